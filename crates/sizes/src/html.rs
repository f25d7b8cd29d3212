//! A self-contained HTML page: a bar chart of the images' sizes (inline SVG, each bar split into its layers) and,
//! per image, a table with a bar per layer. No scripts, no external assets: it opens from a file anywhere.

use std::fmt::Write as _;

use crate::ImageSizes;
use crate::render::{base_name, percent};

/// Layer colours, cycled bottom to top; base layers are grey.
const PALETTE: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
];
const BASE_COLOUR: &str = "#bab0ac";

/// The page for `images`; `title` heads it (the Dockerfile or the images asked for).
pub fn render_html(images: &[ImageSizes], title: &str) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Image sizes: {}</title>\n\
         <style>\nbody{{font-family:system-ui,sans-serif;margin:2em;color:#222}}\n\
         table{{border-collapse:collapse;margin:0.5em 0 2em}}\n\
         td,th{{padding:0.2em 0.6em;text-align:left;vertical-align:top}}\n\
         th{{border-bottom:1px solid #999}}\ntd.num{{text-align:right;white-space:nowrap}}\n\
         td.bar{{width:240px}}\n.layer-bar{{height:0.9em;min-width:1px}}\n\
         code{{font-size:0.85em;word-break:break-all}}\n.chart text{{font-size:12px}}\n</style>\n</head>\n<body>\n\
         <h1>Image sizes: {}</h1>\n<p>Sizes as <code>docker images</code> shows them: the bytes of each layer's files \
         (symlink targets included, hard links once), summed.</p>\n",
        escape(title),
        escape(title)
    );
    page.push_str(&chart(images));
    for image in images {
        page.push_str(&layer_table(image));
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// One horizontal bar per image, as long as its size relative to the biggest image, made of one rectangle per
/// layer.
fn chart(images: &[ImageSizes]) -> String {
    const LABEL: f64 = 180.0;
    const WIDTH: f64 = 600.0;
    const ROW: f64 = 28.0;
    let largest = images.iter().map(|i| i.size).max().unwrap_or(0).max(1);
    #[allow(clippy::cast_precision_loss)] // drawing needs no more than f64's precision
    let scale = WIDTH / largest as f64;
    #[allow(clippy::cast_precision_loss)]
    let height = ROW * images.len() as f64 + 8.0;
    let mut svg = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" \
         role=\"img\" aria-label=\"image sizes\">\n",
        LABEL + WIDTH + 90.0
    );
    for (row, image) in images.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let y = ROW * row as f64 + 4.0;
        let _ = writeln!(
            svg,
            "<text x=\"0\" y=\"{}\">{}</text>",
            y + 15.0,
            escape(&image.name)
        );
        let mut x = LABEL;
        for layer in &image.layers {
            #[allow(clippy::cast_precision_loss)]
            let width = layer.size as f64 * scale;
            let _ = writeln!(
                svg,
                "<rect class=\"layer\" x=\"{x:.2}\" y=\"{y}\" width=\"{width:.2}\" height=\"20\" fill=\"{}\">\
                 <title>{} layer {}: {} ({})</title></rect>",
                colour(image, layer.index),
                escape(&image.name),
                layer.index,
                layer.size_human,
                escape(&layer.created_by)
            );
            x += width;
        }
        let _ = writeln!(
            svg,
            "<text x=\"{:.2}\" y=\"{}\">{}</text>",
            x + 6.0,
            y + 15.0,
            image.size_human
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The image's layers, top first (as `docker history`), each with a bar as wide as its share.
fn layer_table(image: &ImageSizes) -> String {
    let mut html = format!(
        "<h2>{}</h2>\n<p>{} from <code>{}</code>, {} layers, image ID <code>{}</code></p>\n\
         <table>\n<tr><th>layer</th><th>size</th><th>share</th><th class=\"bar\"></th><th>created by</th></tr>\n",
        escape(&image.name),
        image.size_human,
        escape(&base_name(image)),
        image.layers.len(),
        escape(&image.id)
    );
    for layer in image.layers.iter().rev() {
        let _ = writeln!(
            html,
            "<tr><td class=\"num\">{}{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"bar\"><div class=\"layer-bar\" style=\"width:{:.2}%;background:{}\"></div></td>\
             <td><code>{}</code></td></tr>",
            layer.index,
            if layer.from_base { " (base)" } else { "" },
            layer.size_human,
            percent(layer.share),
            layer.share * 100.0,
            colour(image, layer.index),
            escape(&layer.created_by)
        );
    }
    html.push_str("</table>\n");
    html
}

fn colour(image: &ImageSizes, index: usize) -> &'static str {
    if image.layers.get(index).is_some_and(|l| l.from_base) {
        BASE_COLOUR
    } else {
        PALETTE[index % PALETTE.len()]
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}
