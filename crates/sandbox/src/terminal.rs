//! `hoist run -t`: a pseudo-terminal for the command, as `docker run -t` allocates one.
//!
//! hoist opens a pty pair, gives the command the terminal side as its standard input, output and error (the child
//! makes it its controlling terminal, see [`Container::terminal`](crate::Container::terminal)), and copies between
//! the controlling side and its own standard streams, putting its own terminal in raw mode meanwhile so that keys
//! such as Ctrl-C reach the command's terminal as bytes and become signals there.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::thread::{self, JoinHandle};

use rustix::pty::{OpenptFlags, grantpt, ioctl_tiocgptpeer, openpt, unlockpt};
use rustix::termios::{
    OptionalActions, Termios, isatty, tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize,
};

use crate::container::Stdio;
use crate::error::{Error, Result};

fn failed(action: &'static str) -> impl FnOnce(rustix::io::Errno) -> Error {
    move |errno| Error::System {
        action,
        source: errno.into(),
    }
}

/// A pseudo-terminal pair: the controlling side stays with hoist, the terminal side goes to the command.
#[derive(Debug)]
pub struct Terminal {
    controller: OwnedFd,
    terminal: OwnedFd,
}

impl Terminal {
    /// Opens a pty pair, sized like hoist's own terminal when it has one.
    pub fn open() -> Result<Terminal> {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let controller = openpt(flags).map_err(failed("open a pseudo-terminal"))?;
        grantpt(&controller).map_err(failed("grant the pseudo-terminal"))?;
        unlockpt(&controller).map_err(failed("unlock the pseudo-terminal"))?;
        let terminal = ioctl_tiocgptpeer(&controller, flags)
            .map_err(failed("open the pseudo-terminal's peer"))?;
        if let Ok(size) = tcgetwinsize(io::stdout()) {
            let _ = tcsetwinsize(&terminal, size);
        }
        Ok(Terminal {
            controller,
            terminal,
        })
    }

    /// Standard input, output and error for the command: the terminal side.
    pub fn stdio(&self) -> Result<Stdio> {
        let dup = || {
            self.terminal.try_clone().map_err(|source| Error::System {
                action: "duplicate the pseudo-terminal",
                source,
            })
        };
        Ok(Stdio {
            stdin: Some(dup()?),
            stdout: Some(dup()?),
            stderr: Some(dup()?),
        })
    }

    /// The controlling side alone, for a caller that copies the output itself (a detached container's log): the
    /// terminal side is closed here, so once the command's copies are closed too, reads end with `EIO`.
    pub fn into_controller(self) -> OwnedFd {
        self.controller
    }

    /// Starts copying: the command's output to hoist's standard output and, with `input`, hoist's standard input
    /// to the command (hoist's terminal, if it is one, goes to raw mode until [`Attached::finish`]).
    pub fn attach(self, input: bool) -> Result<Attached> {
        let Terminal {
            controller,
            terminal,
        } = self;
        // The command holds its own copies; once they are closed the controller reads EIO and output ends.
        drop(terminal);
        let reader = controller.try_clone().map_err(|source| Error::System {
            action: "duplicate the pseudo-terminal",
            source,
        })?;
        let output = thread::spawn(move || {
            let mut from = File::from(reader);
            let mut buffer = [0u8; 8192];
            let mut stdout = io::stdout();
            // EIO is how a pty says "the other side is closed".
            while let Ok(read) = from.read(&mut buffer) {
                if read == 0
                    || stdout
                        .write_all(&buffer[..read])
                        .and_then(|()| stdout.flush())
                        .is_err()
                {
                    break;
                }
            }
        });
        let mut restore = None;
        if input {
            if isatty(io::stdin()) {
                let saved = tcgetattr(io::stdin()).map_err(failed("read the terminal mode"))?;
                let mut raw = saved.clone();
                raw.make_raw();
                tcsetattr(io::stdin(), OptionalActions::Now, &raw)
                    .map_err(failed("set the terminal mode"))?;
                restore = Some(saved);
            }
            // Not joined: it may stay blocked reading hoist's input after the command has ended.
            thread::spawn(move || {
                let mut to = File::from(controller);
                let mut buffer = [0u8; 8192];
                let mut stdin = io::stdin();
                while let Ok(read) = stdin.read(&mut buffer) {
                    if read == 0 || to.write_all(&buffer[..read]).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Attached {
            output: Some(output),
            restore,
        })
    }
}

/// Copying in progress; [`finish`](Attached::finish) once the command has ended.
#[derive(Debug)]
pub struct Attached {
    output: Option<JoinHandle<()>>,
    restore: Option<Termios>,
}

impl Attached {
    /// Waits until the command's output is all copied, then restores hoist's terminal mode.
    pub fn finish(mut self) {
        if let Some(output) = self.output.take() {
            let _ = output.join();
        }
    }
}

impl Drop for Attached {
    /// Restores hoist's terminal mode, also when the command could not be started.
    fn drop(&mut self) {
        if let Some(saved) = &self.restore {
            let _ = tcsetattr(io::stdin().as_fd(), OptionalActions::Now, saved);
        }
    }
}
