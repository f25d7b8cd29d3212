//! Text renderings of a report: an aligned table (like `docker images`), Markdown, and JSON.

use serde::Serialize;

use crate::{ImageSizes, LayerSize};

/// Longest `created_by` shown in the table and in Markdown; JSON and HTML keep it whole.
const INSTRUCTION_WIDTH: usize = 72;

/// An aligned table: `header` names the first column (`TARGET` or `IMAGE`); each image shows its `top` biggest
/// layers in the last column, one per line.
pub fn render_table(images: &[ImageSizes], header: &str, top: usize) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        header.to_owned(),
        "BASE".to_owned(),
        "SIZE".to_owned(),
        "LAYERS".to_owned(),
        "BIGGEST LAYERS".to_owned(),
    ]];
    for image in images {
        let biggest = image.biggest(top);
        let mut lines = biggest.iter().map(|layer| layer_line(layer));
        rows.push([
            image.name.clone(),
            base_name(image),
            image.size_human.clone(),
            image.layers.len().to_string(),
            lines.next().unwrap_or_else(|| "-".to_owned()),
        ]);
        for line in lines {
            rows.push([
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                line,
            ]);
        }
    }
    let mut widths = [0usize; 4];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(cell);
            line.push_str(&" ".repeat(width - cell.chars().count() + 3));
        }
        line.push_str(&row[4]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A Markdown table with the same columns as [`render_table`], the biggest layers joined with `<br>`.
pub fn render_markdown(images: &[ImageSizes], header: &str, top: usize) -> String {
    let mut out = format!(
        "| {} | base | size | layers | biggest layers |\n| --- | --- | ---: | ---: | --- |\n",
        header.to_lowercase()
    );
    for image in images {
        let biggest: Vec<String> = image
            .biggest(top)
            .iter()
            .map(|layer| {
                format!(
                    "{} ({}) `{}`{}",
                    layer.size_human,
                    percent(layer.share),
                    shorten(&layer.created_by).replace('`', "'"),
                    if layer.from_base { " (base)" } else { "" }
                )
            })
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            markdown_cell(&image.name),
            markdown_cell(&base_name(image)),
            image.size_human,
            image.layers.len(),
            markdown_cell(&biggest.join("<br>")),
        ));
    }
    out
}

/// Pretty JSON: an array with one object per image (every field of [`ImageSizes`], the layers whole) plus
/// `biggest`, the indices of its `top` biggest layers.
pub fn render_json(images: &[ImageSizes], top: usize) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        #[serde(flatten)]
        image: &'a ImageSizes,
        biggest: Vec<usize>,
    }
    let rows: Vec<Row<'_>> = images
        .iter()
        .map(|image| Row {
            image,
            biggest: image.biggest(top).iter().map(|l| l.index).collect(),
        })
        .collect();
    let mut text =
        serde_json::to_string_pretty(&rows).expect("sizes are plain data that always serializes");
    text.push('\n');
    text
}

pub(crate) fn base_name(image: &ImageSizes) -> String {
    image
        .base
        .as_ref()
        .map_or_else(|| "-".to_owned(), |b| b.name.clone())
}

/// `12.5%`, one decimal.
pub(crate) fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn layer_line(layer: &LayerSize) -> String {
    format!(
        "{:<7} {:>6}  {}{}",
        layer.size_human,
        percent(layer.share),
        shorten(&layer.created_by),
        if layer.from_base { " (base)" } else { "" }
    )
}

/// One line, at most [`INSTRUCTION_WIDTH`] characters, `…` where it was cut; `-` when empty.
fn shorten(created_by: &str) -> String {
    let flat = created_by.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "-".to_owned();
    }
    if flat.chars().count() <= INSTRUCTION_WIDTH {
        return flat;
    }
    let mut cut: String = flat.chars().take(INSTRUCTION_WIDTH - 1).collect();
    cut.push('…');
    cut
}

fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BaseImage;

    fn image() -> ImageSizes {
        let layer = |index: usize, size: u64, created_by: &str, from_base: bool| LayerSize {
            index,
            diff_id: format!("sha256:{index:064}"),
            size,
            size_human: hoist_oci::units::human_size_short(size),
            compressed_size: Some(size / 2),
            stored_size: size,
            share: size as f64 / 1_500_000.0,
            created_by: created_by.to_owned(),
            from_base,
        };
        ImageSizes {
            name: "app".to_owned(),
            id: "sha256:abc".to_owned(),
            base: Some(BaseImage {
                name: "busybox:local".to_owned(),
                layers: 1,
            }),
            size: 1_500_000,
            size_human: "1.5MB".to_owned(),
            layers: vec![
                layer(0, 1_000_000, "BusyBox | rootfs", true),
                layer(1, 0, "WORKDIR /app", false),
                layer(
                    2,
                    500_000,
                    &format!("COPY {} /app # buildkit", "x".repeat(100)),
                    false,
                ),
            ],
        }
    }

    #[test]
    fn the_table_lists_the_biggest_layers_under_each_image() {
        let table = render_table(&[image()], "TARGET", 2);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(
            lines[0].starts_with("TARGET   BASE            SIZE    LAYERS   BIGGEST LAYERS"),
            "{table}"
        );
        assert!(
            lines[1].starts_with(
                "app      busybox:local   1.5MB   3        1MB      66.7%  BusyBox | rootfs (base)"
            ),
            "{table}"
        );
        assert!(
            lines[2]
                .trim_start()
                .starts_with("500kB    33.3%  COPY xxx"),
            "{table}"
        );
        assert!(lines[2].ends_with('…'), "{table}");
    }

    #[test]
    fn markdown_escapes_pipes_and_json_keeps_everything() {
        let markdown = render_markdown(&[image()], "TARGET", 1);
        assert_eq!(
            markdown,
            "| target | base | size | layers | biggest layers |\n| --- | --- | ---: | ---: | --- |\n\
             | app | busybox:local | 1.5MB | 3 | 1MB (66.7%) `BusyBox \\| rootfs` (base) |\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&[image()], 2)).expect("valid JSON");
        assert_eq!(json[0]["size"], 1_500_000);
        assert_eq!(json[0]["biggest"], serde_json::json!([0, 2]));
        assert_eq!(
            json[0]["layers"][2]["createdBy"].as_str().map(str::len),
            Some(121)
        );
        assert_eq!(json[0]["base"]["name"], "busybox:local");
    }
}
