//! Every system call the sandbox makes that needs `unsafe`: `clone(2)` with namespace flags, and the code the child
//! runs between `clone` and `execve`.
//!
//! # Why the child never allocates
//!
//! The child is created with a fork-like `clone` (no new stack: it runs on a copy of the caller's stack), possibly
//! from a multi-threaded process (a test harness, the port proxy). Only the calling thread exists in the child, and
//! any lock another thread held at the moment of the clone (the allocator's, stdio's) stays locked forever. So the
//! child only reads the [`Plan`] the parent prepared (every path a `CString`, every argv/envp pointer array built in
//! advance) and makes raw system calls through `libc`: no allocation, no `std` I/O, no `tracing`. Errors travel back
//! as an (operation index, errno) pair written to a close-on-exec pipe; end of file on that pipe means `execve`
//! succeeded.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_uint};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::plan::{Op, OverlayMount, Plan};

/// Namespaces a container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CloneFlags {
    /// A new network namespace (for `--network none` and published ports).
    pub(crate) network: bool,
    /// A new user namespace (rootless: the parent writes its id maps while the child waits).
    pub(crate) user: bool,
}

/// The child's half of the error pipe: what failed and the errno.
pub(crate) const REPORT_SIZE: usize = 8;

/// Clones a child into new mount, PID, UTS and IPC namespaces (and a network namespace if asked), which runs `plan`
/// and execs. Returns the child's PID in the caller's namespace. `report` is the write end of a close-on-exec pipe.
pub(crate) fn clone_container(
    flags: CloneFlags,
    plan: &Plan,
    report: &OwnedFd,
) -> io::Result<libc::pid_t> {
    let mut clone_flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if flags.network {
        clone_flags |= libc::CLONE_NEWNET;
    }
    if flags.user {
        clone_flags |= libc::CLONE_NEWUSER;
    }
    let report_fd = report.as_raw_fd();
    // SAFETY: a fork-like clone (null stack: the child runs on a copy of this stack, as fork does). The child only
    // runs `child_main`, which never returns, never allocates and only makes raw system calls on data prepared
    // before this call (see the module docs), so no lock held by another thread of this process is ever needed.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (clone_flags | libc::SIGCHLD) as libc::c_ulong,
            ptr::null_mut::<libc::c_void>(),
            ptr::null_mut::<libc::c_void>(),
            ptr::null_mut::<libc::c_void>(),
            0 as libc::c_ulong,
        )
    };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => child_main(plan, report_fd),
        pid => Ok(libc::pid_t::try_from(pid).expect("clone returns a pid_t")),
    }
}

/// Runs the plan in the child and execs; on failure reports (op index, errno) and exits with 127.
fn child_main(plan: &Plan, report_fd: RawFd) -> ! {
    for (index, op) in plan.ops.iter().enumerate() {
        if let Err(errno) = run_op(op, &plan.trees) {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let mut report = [0u8; REPORT_SIZE];
            report[..4].copy_from_slice(&index.to_ne_bytes());
            report[4..].copy_from_slice(&errno.to_ne_bytes());
            // SAFETY: `report` is a live 8-byte buffer; `report_fd` is the pipe's write end, open in this child.
            unsafe { libc::write(report_fd, report.as_ptr().cast(), REPORT_SIZE) };
            // SAFETY: `_exit` ends the child without running the parent's atexit handlers or destructors.
            unsafe { libc::_exit(127) };
        }
    }
    // The last op is always `Exec`, which only returns by failing.
    // SAFETY: as above.
    unsafe { libc::_exit(127) }
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Turns a libc return value into `Err(errno)` when it is -1.
fn check(rc: c_int) -> Result<(), i32> {
    if rc == -1 { Err(errno()) } else { Ok(()) }
}

/// [`check`] for `syscall(2)`'s `long` result.
fn check_long(rc: libc::c_long) -> Result<(), i32> {
    if rc == -1 { Err(errno()) } else { Ok(()) }
}

fn opt_ptr(value: Option<&CStr>) -> *const c_char {
    value.map_or(ptr::null(), CStr::as_ptr)
}

fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), i32> {
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    check(unsafe {
        libc::mount(
            opt_ptr(source),
            target.as_ptr(),
            opt_ptr(fstype),
            flags,
            opt_ptr(data).cast(),
        )
    })
}

fn mkdir(path: &CStr, mode: libc::mode_t) -> Result<(), i32> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    match check(unsafe { libc::mkdir(path.as_ptr(), mode) }) {
        Err(libc::EEXIST) => Ok(()),
        other => other,
    }
}

/// Whether `path` is a directory (`Ok(None)` if it does not exist).
fn is_dir(path: &CStr) -> Result<Option<bool>, i32> {
    // SAFETY: `stat` is plain data; zeroed is a valid value for it.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated; `stat` is a valid, writable struct.
    match check(unsafe { libc::stat(path.as_ptr(), &raw mut stat) }) {
        Ok(()) => Ok(Some(stat.st_mode & libc::S_IFMT == libc::S_IFDIR)),
        Err(libc::ENOENT) => Ok(None),
        Err(errno) => Err(errno),
    }
}

const DEV_NULL: &CStr = c"/dev/null";
const TMPFS: &CStr = c"tmpfs";

fn run_op(op: &Op, trees: &[AtomicI32]) -> Result<(), i32> {
    match op {
        Op::WaitForParent { read, write } => {
            // SAFETY: `write` is this child's copy of the pipe's write end; closing it lets the read below see end
            // of file if the parent dies.
            unsafe { libc::close(*write) };
            let mut byte = 0u8;
            // SAFETY: `byte` is a writable one-byte buffer; `read` is the pipe's read end.
            let got = unsafe { libc::read(*read, (&raw mut byte).cast(), 1) };
            // SAFETY: `read` is closed once, here.
            unsafe { libc::close(*read) };
            match got {
                1 => Ok(()),
                0 => Err(libc::ECANCELED),
                _ => Err(errno()),
            }
        }
        Op::NewSession => {
            // SAFETY: no arguments; this child is not a process group leader, so setsid succeeds.
            check(unsafe { libc::setsid() })
        }
        Op::ControllingTerminal => {
            // SAFETY: descriptor 0 is the pty's terminal side placed by the Stdio op; the argument 0 means "do not
            // steal it from another session".
            check(unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) })
        }
        Op::MakeMountsPrivate => mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None),
        Op::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => mount(Some(source), target, Some(fstype), *flags, data.as_deref()),
        Op::MountOverlay(overlay) => mount_overlay(overlay),
        Op::Bind {
            source,
            target,
            read_only,
        } => {
            mount(
                Some(source),
                target,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )?;
            if *read_only {
                remount_read_only(target)?;
            }
            Ok(())
        }
        Op::Mkdir { path, mode } => mkdir(path, *mode),
        Op::Touch { path } => {
            // SAFETY: `path` is NUL-terminated; the descriptor returned is closed right away.
            let fd = unsafe {
                libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_RDONLY | libc::O_CLOEXEC,
                    0o644 as libc::c_uint,
                )
            };
            if fd < 0 {
                return Err(errno());
            }
            // SAFETY: `fd` was just opened by this code and is closed once.
            unsafe { libc::close(fd) };
            Ok(())
        }
        Op::Symlink { target, link } => {
            // SAFETY: both strings are NUL-terminated and outlive the call.
            match check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }) {
                Err(libc::EEXIST) => Ok(()),
                other => other,
            }
        }
        Op::Mask { path } => match is_dir(path)? {
            None => Ok(()),
            Some(true) => mount(Some(TMPFS), path, Some(TMPFS), libc::MS_RDONLY, None),
            Some(false) => mount(Some(DEV_NULL), path, None, libc::MS_BIND, None),
        },
        Op::ReadOnly { path } => match is_dir(path)? {
            None => Ok(()),
            Some(_) => {
                mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None)?;
                remount_read_only(path)
            }
        },
        Op::PivotRoot { root, old_root } => {
            // SAFETY: `root` is NUL-terminated.
            check(unsafe { libc::chdir(root.as_ptr()) })?;
            mkdir(old_root, 0o700)?;
            // SAFETY: both arguments are NUL-terminated; `old_root` is a directory under the new root.
            let rc =
                unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), old_root.as_ptr()) };
            check_long(rc)?;
            // SAFETY: a static NUL-terminated string.
            check(unsafe { libc::chdir(c"/".as_ptr()) })
        }
        Op::UnmountOldRoot { path } => {
            // SAFETY: `path` is NUL-terminated.
            check(unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) })?;
            // SAFETY: as above; the directory is empty once the old root is detached.
            check(unsafe { libc::rmdir(path.as_ptr()) })
        }
        Op::DetachTree { source, slot } => {
            // SAFETY: `source` is NUL-terminated; the descriptor returned is owned by the plan's slot.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD,
                    source.as_ptr(),
                    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
                )
            };
            check_long(fd)?;
            let fd = c_int::try_from(fd).map_err(|_| libc::EINVAL)?;
            trees[*slot].store(fd, Ordering::Relaxed);
            Ok(())
        }
        Op::AttachTree {
            slot,
            target,
            read_only,
            nodev,
        } => {
            let fd = trees[*slot].load(Ordering::Relaxed);
            let attributes = if *read_only { MOUNT_ATTR_RDONLY } else { 0 }
                | if *nodev { MOUNT_ATTR_NODEV } else { 0 };
            // The whole detached tree at once, submounts included, before anyone can see it.
            let limited = attributes == 0
                || match set_mount_attributes(fd, c"", libc::AT_EMPTY_PATH as c_uint, attributes) {
                    Ok(()) => true,
                    Err(libc::ENOSYS) => false,
                    Err(errno) => {
                        // SAFETY: the tree's descriptor is closed once, here.
                        unsafe { libc::close(fd) };
                        return Err(errno);
                    }
                };
            // SAFETY: `fd` is the detached tree cloned before pivot_root; an empty path with F_EMPTY_PATH names it.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_move_mount,
                    fd,
                    c"".as_ptr(),
                    libc::AT_FDCWD,
                    target.as_ptr(),
                    MOVE_MOUNT_F_EMPTY_PATH,
                )
            };
            // SAFETY: the tree's descriptor is closed once, here; the mount stays attached.
            unsafe { libc::close(fd) };
            check_long(rc)?;
            if !limited {
                // Before Linux 5.12: the top mount only.
                if *read_only {
                    remount_read_only(target)?;
                }
                if *nodev {
                    remount_adding(target, libc::MS_NODEV)?;
                }
            }
            Ok(())
        }
        Op::NoDevices { path } => {
            match set_mount_attributes(libc::AT_FDCWD, path, 0, MOUNT_ATTR_NODEV) {
                Err(libc::ENOSYS) => remount_adding(path, libc::MS_NODEV),
                other => other,
            }
        }
        Op::SetHostname { name } => {
            let bytes = name.to_bytes();
            // SAFETY: `bytes` is a live buffer of the given length.
            check(unsafe { libc::sethostname(bytes.as_ptr().cast(), bytes.len()) })
        }
        Op::LoopbackUp => loopback_up(),
        Op::Chdir { path } => {
            // SAFETY: `path` is NUL-terminated.
            check(unsafe { libc::chdir(path.as_ptr()) })
        }
        Op::NewSessionKeyring => {
            // SAFETY: KEYCTL_JOIN_SESSION_KEYRING with a null name creates and joins an anonymous keyring.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_keyctl,
                    KEYCTL_JOIN_SESSION_KEYRING,
                    ptr::null::<c_char>(),
                )
            };
            // A kernel without keyrings has nothing to share.
            match check_long(rc) {
                Err(libc::ENOSYS) => Ok(()),
                other => other,
            }
        }
        Op::DropCapabilities { keep, last } => {
            for capability in 0..=*last {
                if keep & (1u64 << capability) == 0 {
                    // SAFETY: plain integer arguments.
                    let rc = unsafe {
                        libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(capability))
                    };
                    match check(rc) {
                        Ok(()) | Err(libc::EINVAL) => {}
                        Err(errno) => return Err(errno),
                    }
                }
            }
            Ok(())
        }
        Op::Seccomp { program } => {
            let filter = libc::sock_fprog {
                len: u16::try_from(program.len()).map_err(|_| libc::EINVAL)?,
                // The instructions are `#[repr(C)]` with `struct sock_filter`'s layout.
                filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
            };
            // SAFETY: `filter` points at `len` instructions the plan owns, alive for the call (the kernel copies
            // them); SECCOMP_SET_MODE_FILTER with no flags.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0u32,
                    &raw const filter,
                )
            };
            check_long(rc)
        }
        Op::SetIds {
            uid,
            gid,
            groups,
            set_groups,
        } => {
            // Raw system calls on purpose: glibc's setuid/setgid signal every thread the parent had, which do not
            // exist in this child. One thread exists here, so the per-thread calls change the whole process.
            if *set_groups {
                // SAFETY: `groups` is a live slice of the given length.
                let rc =
                    unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
                check_long(rc)?;
            }
            // SAFETY: plain integer arguments.
            check_long(unsafe { libc::syscall(libc::SYS_setresgid, *gid, *gid, *gid) })?;
            // SAFETY: plain integer arguments.
            check_long(unsafe { libc::syscall(libc::SYS_setresuid, *uid, *uid, *uid) })
        }
        Op::Stdio { fds } => {
            for (target, source) in fds.iter().enumerate() {
                if let Some(source) = source {
                    let target = c_int::try_from(target).expect("three stdio descriptors");
                    // SAFETY: `source` is a descriptor the parent kept open for the child; dup2 onto 0..2.
                    check(unsafe { libc::dup2(*source, target) })?;
                }
            }
            Ok(())
        }
        Op::Exec {
            candidates,
            argv,
            envp,
        } => exec(candidates, argv, envp),
    }
}

// The new mount API's constants (linux/mount.h).
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// Mounts an overlay root: with the new mount API when the kernel has `lowerdir+` (no limit on the number of
/// layers), else with `mount(2)` and each option string in turn while the kernel refuses one as invalid (one
/// without the features turned off, which old kernels do not know, then one without `volatile`, before 5.10;
/// every kernel with `lowerdir+` knows them all).
fn mount_overlay(overlay: &OverlayMount) -> Result<(), i32> {
    let legacy = |options: &CStr| {
        mount(
            Some(c"overlay"),
            &overlay.target,
            Some(c"overlay"),
            0,
            Some(options),
        )
    };
    mount_overlay_fsconfig(overlay).or_else(|_| {
        let mut result = Err(libc::EINVAL);
        for options in &overlay.legacy {
            result = legacy(options);
            if result != Err(libc::EINVAL) {
                break;
            }
        }
        result
    })
}

fn mount_overlay_fsconfig(overlay: &OverlayMount) -> Result<(), i32> {
    // SAFETY: a static NUL-terminated name and a plain flag.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) };
    let fs = c_int::try_from(fs).map_err(|_| libc::EINVAL)?;
    if fs < 0 {
        return Err(errno());
    }
    let configure = || -> Result<c_int, i32> {
        let set = |key: &CStr, value: Option<&CStr>| -> Result<(), i32> {
            let command = if value.is_some() {
                FSCONFIG_SET_STRING
            } else {
                FSCONFIG_SET_FLAG
            };
            // SAFETY: `fs` is the fsopen descriptor; key and value are NUL-terminated or null (for a flag).
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs,
                    command,
                    key.as_ptr(),
                    opt_ptr(value),
                    0,
                )
            };
            check_long(rc)
        };
        for layer in &overlay.lower {
            set(c"lowerdir+", Some(layer))?;
        }
        set(c"upperdir", Some(&overlay.upper))?;
        set(c"workdir", Some(&overlay.work))?;
        if overlay.userxattr {
            set(c"userxattr", None)?;
        } else {
            for (key, value) in crate::plan::OFF_FEATURES {
                set(key, Some(value))?;
            }
        }
        if overlay.volatile {
            set(c"volatile", None)?;
        }
        // SAFETY: `fs` is the fsopen descriptor; the command takes no key or value.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_CMD_CREATE,
                ptr::null::<c_char>(),
                ptr::null::<c_char>(),
                0,
            )
        };
        check_long(rc)?;
        // SAFETY: `fs` is a configured file system context.
        let mnt = unsafe { libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0) };
        check_long(mnt)?;
        c_int::try_from(mnt).map_err(|_| libc::EINVAL)
    };
    let result = configure().and_then(|mnt| {
        // SAFETY: `mnt` is the detached mount; an empty path with F_EMPTY_PATH names `mnt` itself.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mnt,
                c"".as_ptr(),
                libc::AT_FDCWD,
                overlay.target.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        // SAFETY: `mnt` is closed once, here; the mount stays attached at its target.
        unsafe { libc::close(mnt) };
        check_long(rc)
    });
    // SAFETY: `fs` is closed once, here.
    unsafe { libc::close(fs) };
    result
}

// linux/keyctl.h.
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_ulong = 1;

// mount_setattr(2) (Linux 5.12), linux/mount.h.
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `struct mount_attr`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets `attributes` on the mount at `dirfd`/`path` and every mount below it.
fn set_mount_attributes(
    dirfd: c_int,
    path: &CStr,
    flags: c_uint,
    attributes: u64,
) -> Result<(), i32> {
    let attr = MountAttr {
        attr_set: attributes,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is NUL-terminated; `attr` is a live `struct mount_attr` of the size given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags | AT_RECURSIVE,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check_long(rc)
}

/// Remounts a bind mount read-only (see [`remount_adding`]).
fn remount_read_only(target: &CStr) -> Result<(), i32> {
    remount_adding(target, libc::MS_RDONLY)
}

/// Remounts a bind mount with `flag` added, keeping the flags it already has: in a user namespace, `nosuid`,
/// `nodev`, `noexec` and the atime flags of a mount inherited from the host are locked, and a remount dropping
/// them fails.
fn remount_adding(target: &CStr, flag: libc::c_ulong) -> Result<(), i32> {
    // SAFETY: `statvfs` is plain data; zeroed is valid.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `target` is NUL-terminated; `stat` is writable.
    check(unsafe { libc::statvfs(target.as_ptr(), &raw mut stat) })?;
    // The ST_* bits of f_flag have the values of the matching MS_* mount flags.
    let kept = stat.f_flag
        & (libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC
            | libc::MS_NOATIME
            | libc::MS_NODIRATIME
            | libc::MS_RELATIME);
    mount(
        None,
        target,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_REC | flag | kept,
        None,
    )
}

/// Brings up `lo` in a new network namespace (`ip link set lo up`), with the SIOCSIFFLAGS ioctl.
fn loopback_up() -> Result<(), i32> {
    // SAFETY: plain arguments; the socket is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: `ifreq` is plain data; zeroed is valid.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as c_char;
    }
    // SAFETY: `fd` is a socket and `request` a valid ifreq naming `lo`.
    let result =
        check(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &raw mut request) }).and_then(|()| {
            // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
            unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
            // SAFETY: as above.
            check(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &raw mut request) })
        });
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    result
}

/// The last steps before `execve`: signals back to their defaults, no descriptor of hoist left open (3 and up are
/// marked close-on-exec, which also closes the error pipe and so tells the parent `execve` worked), then each
/// candidate path in `$PATH` order.
fn exec(
    candidates: &[std::ffi::CString],
    argv: &[*const c_char],
    envp: &[*const c_char],
) -> Result<(), i32> {
    // SAFETY: `set` is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&raw mut set) };
    // SAFETY: one thread exists in this child, so the thread mask is the process mask.
    check(unsafe { libc::sigprocmask(libc::SIG_SETMASK, &raw const set, ptr::null_mut()) })?;
    // Rust's runtime ignores SIGPIPE and an ignored signal stays ignored across execve.
    // SAFETY: restoring the default disposition of a signal is always valid.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // The container dies with the thread that started it (e.g. hoist killed with SIGKILL).
    // SAFETY: plain integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) })?;
    // SAFETY: plain integer arguments; CLOSE_RANGE_CLOEXEC (Linux 5.11) only sets flags.
    let closed = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if closed == -1 {
        mark_cloexec_by_hand()?;
    }
    let mut last = libc::ENOENT;
    for candidate in candidates {
        // SAFETY: `candidate` is NUL-terminated; `argv` and `envp` are NULL-terminated arrays of pointers into
        // strings the plan owns, all alive until execve replaces this process.
        unsafe { libc::execve(candidate.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        match errno() {
            // Keep looking along $PATH, as execvp does; remember a permission problem over "not found".
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => last = libc::EACCES,
            other => return Err(other),
        }
    }
    Err(last)
}

/// `close_range` is missing (Linux < 5.11): mark every descriptor from 3 up to the limit close-on-exec.
fn mark_cloexec_by_hand() -> Result<(), i32> {
    // SAFETY: plain integer argument.
    let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
    let max = c_int::try_from(max).unwrap_or(1024).max(3);
    for fd in 3..max {
        // SAFETY: F_SETFD on a descriptor that may not exist fails with EBADF, which is ignored.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// The termination signals hoist forwards to a container.
pub(crate) const FORWARDED_SIGNALS: [c_int; 4] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Blocks the forwarded signals in the calling thread (threads it starts later inherit the mask) and returns a
/// `signalfd` that receives them, plus the previous mask to restore.
pub(crate) fn block_forwarded_signals() -> io::Result<(OwnedFd, libc::sigset_t)> {
    // SAFETY: plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&raw mut set) };
    for signal in FORWARDED_SIGNALS {
        // SAFETY: `set` is a valid sigset_t and `signal` a valid signal number.
        unsafe { libc::sigaddset(&raw mut set, signal) };
    }
    // SAFETY: both pointers are valid sigset_t values.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, &raw mut old) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: `set` is valid; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &raw const set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        let error = io::Error::last_os_error();
        restore_signal_mask(&old);
        return Err(error);
    }
    // SAFETY: `fd` was just returned by signalfd and is owned by nobody else.
    Ok((unsafe { OwnedFd::from_raw_fd(fd) }, old))
}

/// Restores the mask [`block_forwarded_signals`] replaced.
pub(crate) fn restore_signal_mask(old: &libc::sigset_t) {
    // SAFETY: `old` is a valid sigset_t returned by pthread_sigmask.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, ptr::null_mut()) };
}

/// Reads one pending signal number from a signalfd, if any.
pub(crate) fn read_signal(fd: &OwnedFd) -> Option<c_int> {
    // SAFETY: plain data; zeroed is valid.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a writable buffer of `size` bytes.
    let read = unsafe { libc::read(fd.as_raw_fd(), (&raw mut info).cast(), size) };
    (usize::try_from(read).ok() == Some(size)).then(|| c_int::try_from(info.ssi_signo).unwrap_or(0))
}

/// Makes `command` start in a private mount namespace of its own, with `overlay` (target, options) mounted there:
/// how an external OCI runtime gets an overlay root that never appears in the host's mount table.
pub(crate) fn in_private_mount_namespace(
    command: &mut std::process::Command,
    overlay: Option<OverlayMount>,
) {
    use std::os::unix::process::CommandExt;
    let hook = move || -> io::Result<()> {
        let failed = |errno: i32| io::Error::from_raw_os_error(errno);
        // SAFETY: unshare takes a plain flag; it only affects this (child) process.
        check(unsafe { libc::unshare(libc::CLONE_NEWNS) }).map_err(failed)?;
        mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None).map_err(failed)?;
        if let Some(overlay) = &overlay {
            mount_overlay(overlay).map_err(failed)?;
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec and only makes raw system calls on strings prepared before the
    // fork (no allocation: the error path builds an io::Error from a raw errno, which does not allocate).
    unsafe { command.pre_exec(hook) };
}

/// Starts a helper process that joins the container's user namespace (rootless) and network namespace, then, for
/// each port number it receives on the returned socket, connects to the container's `127.0.0.1:PORT` and sends the
/// connected socket back (`SCM_RIGHTS`). A process of its own because joining a user namespace is refused to a
/// multi-threaded process, and joining a network namespace owned by another user namespace needs `CAP_SYS_ADMIN`
/// in the caller's namespace as well; a single-threaded child in the parent user namespace with hoist's uid has
/// every capability in the container's. Returns the helper's pid and hoist's end of the socket pair.
pub(crate) fn spawn_dialer(
    user: Option<&OwnedFd>,
    network: &OwnedFd,
) -> io::Result<(libc::pid_t, OwnedFd)> {
    let mut pair = [0 as c_int; 2];
    // SAFETY: `pair` is a writable array of two descriptors.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    let user = user.map_or(-1, AsRawFd::as_raw_fd);
    let network = network.as_raw_fd();
    let theirs_fd = theirs.as_raw_fd();
    // SAFETY: a fork-like clone (see `clone_container`); the child only runs `dialer_main`, which never returns and
    // makes raw system calls on integers and stack buffers, so no lock of another thread is ever needed.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            ptr::null_mut::<libc::c_void>(),
            ptr::null_mut::<libc::c_void>(),
            ptr::null_mut::<libc::c_void>(),
            0 as libc::c_ulong,
        )
    };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => dialer_main(user, network, theirs_fd, ours.as_raw_fd()),
        pid => {
            drop(theirs);
            let pid = libc::pid_t::try_from(pid).expect("clone returns a pid_t");
            // The helper reports one byte once it is in the namespaces (0 if it could not join them).
            let mut ready = 0u8;
            // SAFETY: `ready` is a writable one-byte buffer.
            let read = unsafe { libc::recv(ours.as_raw_fd(), (&raw mut ready).cast(), 1, 0) };
            if read != 1 || ready != 1 {
                // SAFETY: reaping our own child; a null status pointer is allowed.
                unsafe { libc::waitpid(pid, ptr::null_mut(), 0) };
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok((pid, ours))
        }
    }
}

fn dialer_main(user: RawFd, network: RawFd, socket: RawFd, parent_end: RawFd) -> ! {
    // Keep only our end of the pair: with hoist's end closed here, hoist closing its own means end of file for us.
    // SAFETY: `parent_end` is this process's inherited copy of hoist's end, closed once.
    unsafe { libc::close(parent_end) };
    // SAFETY: plain integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    // SAFETY: `user` and `network` are namespace descriptors inherited from the parent; this process has one thread.
    let joined = (user < 0 || unsafe { libc::setns(user, libc::CLONE_NEWUSER) } == 0)
        // SAFETY: as above.
        && unsafe { libc::setns(network, libc::CLONE_NEWNET) } == 0;
    if !joined {
        send_byte(socket, 0);
        // SAFETY: ends this helper without running the parent's handlers.
        unsafe { libc::_exit(1) };
    }
    // Nothing else of hoist's stays open here (listening sockets, pipes): our socket becomes descriptor 3.
    // SAFETY: plain descriptor numbers; dup2 onto 3 then closing everything above it.
    let socket = unsafe {
        if socket != 3 {
            libc::dup2(socket, 3);
        }
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
        3
    };
    send_byte(socket, 1);
    loop {
        // The port (native byte order), then 0 for TCP or 1 for UDP.
        let mut request = [0u8; 3];
        // SAFETY: `request` is a writable three-byte buffer.
        let read = unsafe { libc::recv(socket, request.as_mut_ptr().cast(), 3, 0) };
        if read != 3 {
            // SAFETY: the parent closed its end: done.
            unsafe { libc::_exit(0) };
        }
        let port = [request[0], request[1]];
        let kind = if request[2] == 1 {
            libc::SOCK_DGRAM
        } else {
            libc::SOCK_STREAM
        };
        // SAFETY: plain arguments; the descriptor is closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) };
        // SAFETY: `sockaddr_in` is plain data; zeroed is valid.
        let mut address: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        address.sin_family = libc::AF_INET as libc::sa_family_t;
        address.sin_port = u16::from_ne_bytes(port).to_be();
        address.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: `address` is a valid sockaddr_in of `size` bytes.
        let connected =
            fd >= 0 && unsafe { libc::connect(fd, (&raw const address).cast(), size) } == 0;
        if connected {
            send_fd(socket, fd);
        } else {
            send_byte(socket, 0);
        }
        if fd >= 0 {
            // SAFETY: `fd` was opened above and is closed once; the parent has its own copy if it was sent.
            unsafe { libc::close(fd) };
        }
    }
}

fn send_byte(socket: RawFd, byte: u8) {
    // SAFETY: a one-byte buffer on the stack.
    unsafe { libc::send(socket, (&raw const byte).cast(), 1, 0) };
}

/// Room for one `cmsghdr` carrying one descriptor, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct FdControl([u8; 24]);

/// Sends the byte 1 with `fd` attached.
fn send_fd(socket: RawFd, fd: RawFd) {
    let mut byte = 1u8;
    let mut iov = libc::iovec {
        iov_base: (&raw mut byte).cast(),
        iov_len: 1,
    };
    let mut control = FdControl([0; 24]);
    // SAFETY: `msghdr` is plain data; zeroed is valid.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &raw mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    message.msg_controllen =
        unsafe { libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) } as usize;
    // SAFETY: `message` has a control buffer large enough for one header carrying one int.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&raw const message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as usize;
        ptr::write_unaligned(libc::CMSG_DATA(header).cast::<c_int>(), fd);
        libc::sendmsg(socket, &raw const message, 0);
    }
}

/// Asks the dialing helper for a socket connected to the container's `127.0.0.1:port` (TCP, or UDP with `udp`).
pub(crate) fn dial(helper: &OwnedFd, port: u16, udp: bool) -> io::Result<OwnedFd> {
    let [low, high] = port.to_ne_bytes();
    let request = [low, high, u8::from(udp)];
    // SAFETY: `request` is a three-byte buffer.
    if unsafe { libc::send(helper.as_raw_fd(), request.as_ptr().cast(), 3, 0) } != 3 {
        return Err(io::Error::last_os_error());
    }
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&raw mut byte).cast(),
        iov_len: 1,
    };
    let mut control = FdControl([0; 24]);
    // SAFETY: `msghdr` is plain data; zeroed is valid.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &raw mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.0.as_mut_ptr().cast();
    message.msg_controllen = control.0.len();
    // SAFETY: `message` points at live buffers of the sizes it states.
    let read =
        unsafe { libc::recvmsg(helper.as_raw_fd(), &raw mut message, libc::MSG_CMSG_CLOEXEC) };
    if read != 1 || byte != 1 {
        return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
    }
    // SAFETY: the helper attached exactly one descriptor to a successful reply.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&raw const message);
        if header.is_null() || (*header).cmsg_type != libc::SCM_RIGHTS {
            return Err(io::Error::from(io::ErrorKind::InvalidData));
        }
        let fd = ptr::read_unaligned(libc::CMSG_DATA(header).cast::<c_int>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Reaps a helper started by [`spawn_dialer`].
pub(crate) fn reap_helper(pid: libc::pid_t) {
    // SAFETY: reaping our own child; a null status pointer is allowed.
    unsafe { libc::waitpid(pid, ptr::null_mut(), 0) };
}
