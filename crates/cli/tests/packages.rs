//! A package install in a RUN step, offline: a real Debian package (built here with `dpkg-deb`, with a maintainer
//! script) installed by `dpkg -i` inside the sandbox, as `apt-get install` does after its download. The image must
//! hold the package's files and the dpkg database entry; the build context's `.deb` must not be in the image; and a
//! second build with a changed package reruns only the install step. Needs root (the sandbox).

use std::fs;
use std::process::Command;

use hoist_testkit::{BusyboxRootfs, HoistCmd};

/// Builds `hello-hoist_<version>_all.deb` in `dir` and returns its file name.
fn build_deb(dir: &std::path::Path, version: &str) -> String {
    let root = dir.join(format!("pkg-{version}"));
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: hello-hoist\nVersion: {version}\nArchitecture: all\nMaintainer: hoist tests <t@example.invalid>\n\
             Description: a package installed by a RUN step\n"
        ),
    )
    .unwrap();
    // A maintainer script, as real packages have: it runs inside the step, after the files are unpacked.
    fs::write(
        root.join("DEBIAN/postinst"),
        "#!/bin/sh\nset -e\necho \"configured $(cat /usr/bin/hello-hoist | wc -l)\" > /var/lib/hello-hoist.state\n",
    )
    .unwrap();
    fs::write(
        root.join("usr/bin/hello-hoist"),
        format!("#!/bin/sh\necho hello from package {version}\n"),
    )
    .unwrap();
    for file in ["DEBIAN/postinst", "usr/bin/hello-hoist"] {
        let status = Command::new("chmod")
            .arg("0755")
            .arg(root.join(file))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let name = format!("hello-hoist_{version}_all.deb");
    let output = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(dir.join(&name))
        .output()
        .expect("dpkg-deb (Debian's dpkg) builds the test package");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    name
}

#[test]
fn a_package_installed_in_a_run_step_is_in_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let tar = BusyboxRootfs::new(dir.path().join("rootfs"))
        .applets(&[
            "sh", "cat", "wc", "echo", "dpkg", "mkdir", "touch", "grep", "tar", "gzip", "ar", "rm",
        ])
        .dirs(&["tmp", "var/lib/dpkg/info"])
        .file("var/lib/dpkg/status", "")
        .tar();
    let hoist = HoistCmd::new(env!("CARGO_BIN_EXE_hoist")).isolated(dir.path());
    hoist.ok(&[
        "import",
        tar.to_str().unwrap(),
        "-t",
        "deb-base:1",
        "--change",
        "ENV PATH=/usr/bin:/bin",
    ]);
    let context = dir.path().join("context");
    fs::create_dir_all(&context).unwrap();
    let deb = build_deb(&context, "1.0");
    fs::write(
        context.join("Dockerfile"),
        "FROM deb-base:1\n\
         RUN echo before the install > /before\n\
         RUN --mount=type=bind,target=/pkgs dpkg -i /pkgs/hello-hoist_*_all.deb\n\
         CMD [\"hello-hoist\"]\n",
    )
    .unwrap();
    let build = |out: &str| {
        let dest = dir.path().join(out);
        let hoist = hoist.clone().current_dir(&context);
        let stderr = hoist.run(&[
            "build",
            "--progress",
            "plain",
            "-t",
            "with-package:1",
            "-o",
            &format!("type=local,dest={}", dest.display()),
            ".",
        ]);
        assert!(stderr.success(), "{}", stderr.describe());
        (dest, stderr.stderr)
    };
    let (fs_root, _) = build("out1");
    assert_eq!(
        fs::read_to_string(fs_root.join("usr/bin/hello-hoist")).unwrap(),
        "#!/bin/sh\necho hello from package 1.0\n"
    );
    assert_eq!(
        fs::read_to_string(fs_root.join("var/lib/hello-hoist.state")).unwrap(),
        "configured 2\n"
    );
    let status = fs::read_to_string(fs_root.join("var/lib/dpkg/status")).unwrap();
    assert!(
        status.contains("Package: hello-hoist") && status.contains("Version: 1.0"),
        "dpkg's database does not list the package:\n{status}"
    );
    assert!(
        !fs_root.join("pkgs").join(&deb).exists(),
        "the bind-mounted .deb leaked into the image"
    );

    // The image runs the packaged program.
    let run = hoist.run(&["run", "--rm", "--network", "none", "with-package:1"]);
    assert!(run.success(), "{}", run.describe());
    assert_eq!(run.stdout, "hello from package 1.0\n");

    // A new package version: the install reruns (the bind mount's content is in its key), the step before does not.
    fs::remove_file(context.join(&deb)).unwrap();
    build_deb(&context, "2.0");
    let (fs_root, stderr) = build("out2");
    assert_eq!(
        fs::read_to_string(fs_root.join("usr/bin/hello-hoist")).unwrap(),
        "#!/bin/sh\necho hello from package 2.0\n"
    );
    let install = stderr
        .lines()
        .find(|line| line.contains("RUN --mount=type=bind,target=/pkgs dpkg -i"))
        .map(|line| line.split_whitespace().next().unwrap().to_owned())
        .expect("the install step's vertex");
    let before = stderr
        .lines()
        .find(|line| line.ends_with("RUN echo before the install > /before"))
        .map(|line| line.split_whitespace().next().unwrap().to_owned())
        .expect("the first RUN's vertex");
    assert!(stderr.contains(&format!("{before} CACHED")), "{stderr}");
    assert!(!stderr.contains(&format!("{install} CACHED")), "{stderr}");
}
