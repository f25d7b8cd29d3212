//! A small seccomp filter for confined containers: the system calls Docker's default profile refuses that neither
//! namespaces nor the dropped capabilities already refuse.
//!
//! Docker's profile is an allow-list of about 350 calls; most of what it leaves out needs a capability a confined
//! container does not have (`mount`, `bpf`, `ptrace` of others, module loading, clock setting …). What is left
//! open without it, and refused here with `EPERM` as Docker does:
//!
//! - the kernel keyring (`keyctl`, `add_key`, `request_key`): a rootful container's root shares the host root's
//!   user keyring;
//! - new user namespaces (`unshare` or `clone` with `CLONE_NEWUSER`): inside one, a process has every capability
//!   over what it mounts there, the way most recent overlayfs and netfilter escapes start;
//! - `userfaultfd` and `perf_event_open` (left to the host's sysctls otherwise).
//!
//! `clone3` gets `ENOSYS`, as from Docker, so C libraries fall back to `clone`, whose flags a filter can read. On
//! x86-64 the same calls are refused through the i386 entry points, and x32 calls get `ENOSYS`.

/// One classic BPF instruction, laid out as `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Instruction {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `BPF_LD | BPF_W | BPF_ABS` (`BPF_LD` and `BPF_W` are 0).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;
const BPF_RET_K: u16 = 0x06;

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

/// Offsets in `struct seccomp_data`: the call number, the audit architecture, the low half of the first argument
/// (little-endian).
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0_LOW: u32 = 16;

const CLONE_NEWUSER: u32 = 0x1000_0000;

/// The system call numbers of one ABI.
struct Abi {
    arch: u32,
    refused: [u32; 6],
    newuser_flag_in_arg0: [u32; 2],
    clone3: u32,
}

#[cfg(target_arch = "x86_64")]
const NATIVE: Option<Abi> = Some(Abi {
    arch: AUDIT_ARCH_X86_64,
    refused: [250, 248, 249, 323, 298, 250],
    newuser_flag_in_arg0: [272, 56],
    clone3: 435,
});

#[cfg(target_arch = "aarch64")]
const NATIVE: Option<Abi> = Some(Abi {
    arch: 0xc000_00b7,
    refused: [219, 217, 218, 282, 241, 219],
    newuser_flag_in_arg0: [97, 220],
    clone3: 435,
});

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const NATIVE: Option<Abi> = None;

/// The i386 entry points of an x86-64 kernel.
#[cfg(target_arch = "x86_64")]
const COMPAT: Option<Abi> = Some(Abi {
    arch: 0x4000_0003,
    refused: [288, 286, 287, 374, 336, 288],
    newuser_flag_in_arg0: [310, 120],
    clone3: 435,
});

#[cfg(not(target_arch = "x86_64"))]
const COMPAT: Option<Abi> = None;

/// x32 calls carry this bit in their number (with the x86-64 audit architecture).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

fn statement(code: u16, k: u32) -> Instruction {
    Instruction {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Instruction {
    Instruction { code, jt, jf, k }
}

fn errno(code: i32) -> Instruction {
    statement(
        BPF_RET_K,
        SECCOMP_RET_ERRNO | u32::try_from(code).expect("errno values are positive"),
    )
}

/// The checks for one ABI, with the call number loaded; ends by allowing the call.
fn abi_checks(abi: &Abi, program: &mut Vec<Instruction>) {
    program.push(statement(BPF_LD_W_ABS, NR));
    if abi.arch == AUDIT_ARCH_X86_64 {
        program.push(jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1));
        program.push(errno(libc::ENOSYS));
    }
    for nr in abi.refused {
        program.push(jump(BPF_JMP_JEQ_K, nr, 0, 1));
        program.push(errno(libc::EPERM));
    }
    program.push(jump(BPF_JMP_JEQ_K, abi.clone3, 0, 1));
    program.push(errno(libc::ENOSYS));
    for nr in abi.newuser_flag_in_arg0 {
        // Not this call: skip to the next block with the number still loaded.
        program.push(jump(BPF_JMP_JEQ_K, nr, 0, 4));
        program.push(statement(BPF_LD_W_ABS, ARG0_LOW));
        program.push(jump(BPF_JMP_JSET_K, CLONE_NEWUSER, 0, 1));
        program.push(errno(libc::EPERM));
        program.push(statement(BPF_RET_K, SECCOMP_RET_ALLOW));
    }
    program.push(statement(BPF_RET_K, SECCOMP_RET_ALLOW));
}

/// The filter program, or `None` on an architecture this module has no numbers for (no filter is installed).
pub(crate) fn filter() -> Option<Vec<Instruction>> {
    let native = NATIVE?;
    let mut native_checks = Vec::new();
    abi_checks(&native, &mut native_checks);
    let mut compat_checks = Vec::new();
    if let Some(compat) = &COMPAT {
        abi_checks(compat, &mut compat_checks);
    }
    let mut program = vec![statement(BPF_LD_W_ABS, ARCH)];
    let skip_native = u8::try_from(native_checks.len()).expect("the filter is short");
    program.push(jump(BPF_JMP_JEQ_K, native.arch, 0, skip_native));
    program.extend(native_checks);
    if let Some(compat) = &COMPAT {
        let skip_compat = u8::try_from(compat_checks.len()).expect("the filter is short");
        program.push(jump(BPF_JMP_JEQ_K, compat.arch, 0, skip_compat));
        program.extend(compat_checks);
    }
    // Any other architecture: nothing runs.
    program.push(errno(libc::ENOSYS));
    Some(program)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter on one `seccomp_data` (a tiny classic-BPF interpreter for the instructions used here).
    fn evaluate(program: &[Instruction], arch: u32, nr: u32, arg0: u32) -> u32 {
        let mut accumulator = 0u32;
        let mut pc = 0usize;
        loop {
            let instruction = program[pc];
            let word = |offset| match offset {
                NR => nr,
                ARCH => arch,
                ARG0_LOW => arg0,
                other => panic!("unexpected offset {other}"),
            };
            let taken = match instruction.code {
                BPF_LD_W_ABS => {
                    accumulator = word(instruction.k);
                    pc += 1;
                    continue;
                }
                BPF_RET_K => return instruction.k,
                BPF_JMP_JEQ_K => accumulator == instruction.k,
                BPF_JMP_JGE_K => accumulator >= instruction.k,
                BPF_JMP_JSET_K => accumulator & instruction.k != 0,
                other => panic!("unexpected code {other:#x}"),
            };
            let offset = if taken {
                instruction.jt
            } else {
                instruction.jf
            };
            pc += 1 + usize::from(offset);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn refuses_keyrings_and_new_user_namespaces_and_allows_the_rest() {
        let program = filter().unwrap();
        let x86_64 = AUDIT_ARCH_X86_64;
        let eperm = SECCOMP_RET_ERRNO | 1;
        let enosys = SECCOMP_RET_ERRNO | 38;
        assert_eq!(evaluate(&program, x86_64, 250, 0), eperm, "keyctl");
        assert_eq!(evaluate(&program, x86_64, 248, 0), eperm, "add_key");
        assert_eq!(
            evaluate(&program, x86_64, 272, CLONE_NEWUSER),
            eperm,
            "unshare"
        );
        assert_eq!(
            evaluate(&program, x86_64, 272, 0x0002_0000),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(
            evaluate(&program, x86_64, 56, CLONE_NEWUSER | 0x11),
            eperm,
            "clone"
        );
        assert_eq!(
            evaluate(&program, x86_64, 56, 0x01_0000 | 0x11),
            SECCOMP_RET_ALLOW
        );
        assert_eq!(evaluate(&program, x86_64, 435, 0), enosys, "clone3");
        assert_eq!(evaluate(&program, x86_64, 0x4000_0001, 0), enosys, "x32");
        for allowed in [0, 1, 59, 57, 61, 231] {
            assert_eq!(evaluate(&program, x86_64, allowed, 0), SECCOMP_RET_ALLOW);
        }
        let i386 = 0x4000_0003;
        assert_eq!(evaluate(&program, i386, 288, 0), eperm, "i386 keyctl");
        assert_eq!(
            evaluate(&program, i386, 120, CLONE_NEWUSER),
            eperm,
            "i386 clone"
        );
        assert_eq!(
            evaluate(&program, i386, 250, 0),
            SECCOMP_RET_ALLOW,
            "i386 250"
        );
        assert_eq!(
            evaluate(&program, 0xc000_00b7, 1, 0),
            enosys,
            "another architecture"
        );
    }
}
