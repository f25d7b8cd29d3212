//! `USER` resolution against the image's `/etc/passwd` and `/etc/group`, with Docker's rules
//! (moby `pkg/user`/`GetExecUser`): `name`, `uid`, `name:group`, `uid:gid`; a numeric uid missing from passwd runs
//! with gid 0; supplementary groups are the groups listing the user by name.

use crate::container::User;
use crate::error::{Error, Result};

/// The resolved user plus the home directory from passwd (for `$HOME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// uid, gid, supplementary gids.
    pub user: User,
    /// The passwd home directory, `/` if unknown (as Docker).
    pub home: String,
}

impl ResolvedUser {
    /// Adds `HOME=<passwd home>` to `env` unless it sets `HOME` already: runc does this for every process it starts,
    /// so `RUN` steps and containers see the home of the user they run as (Go, pip and npm need it for their caches).
    pub fn set_home_if_unset(&self, env: &mut Vec<String>) {
        if !env.iter().any(|entry| entry.starts_with("HOME=")) {
            env.push(format!("HOME={}", self.home));
        }
    }
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 || line.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: fields[0],
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
            home: fields.get(5).copied().unwrap_or("/"),
        })
    })
}

fn group_entries(group: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    group.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 3 || line.starts_with('#') {
            return None;
        }
        let members = fields
            .get(3)
            .map(|m| m.split(',').filter(|m| !m.is_empty()).collect())
            .unwrap_or_default();
        Some((fields[0], fields[2].parse().ok()?, members))
    })
}

/// Resolves `spec` (`""` means root) against the contents of the image's `/etc/passwd` and `/etc/group` (empty
/// strings when the files are missing).
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = passwd_entries(passwd)
        .find(|e| e.name == user_part)
        .or_else(|| {
            let uid: u32 = user_part.parse().ok()?;
            passwd_entries(passwd).find(|e| e.uid == uid)
        });
    let (uid, mut gid, name, home) = match (&entry, user_part.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name), e.home.to_owned()),
        (None, Ok(uid)) => (uid, 0, None, "/".to_owned()),
        (None, Err(_)) => {
            return Err(Error::UnknownUser {
                kind: "user",
                name: user_part.to_owned(),
                file: "/etc/passwd",
            });
        }
    };
    if let Some(group_part) = group_part.filter(|g| !g.is_empty()) {
        gid = match group_entries(group).find(|(n, _, _)| *n == group_part) {
            Some((_, gid, _)) => gid,
            None => group_part.parse().map_err(|_| Error::UnknownUser {
                kind: "group",
                name: group_part.to_owned(),
                file: "/etc/group",
            })?,
        };
    }
    let mut additional_gids = Vec::new();
    if group_part.is_none()
        && let Some(name) = name
    {
        for (_, group_gid, members) in group_entries(group) {
            if members.contains(&name) && group_gid != gid && !additional_gids.contains(&group_gid)
            {
                additional_gids.push(group_gid);
            }
        }
    }
    Ok(ResolvedUser {
        user: User {
            uid,
            gid,
            additional_gids,
        },
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_is_added_only_when_unset() {
        let user = resolve_user("app", PASSWD, "").unwrap();
        let mut env = vec!["PATH=/bin".to_owned()];
        user.set_home_if_unset(&mut env);
        assert_eq!(env, ["PATH=/bin", "HOME=/home/app"]);
        let mut env = vec!["HOME=/custom".to_owned()];
        user.set_home_if_unset(&mut env);
        assert_eq!(env, ["HOME=/custom"]);
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\nstaff:x:50:app\n";

    fn resolve(spec: &str) -> Result<ResolvedUser> {
        resolve_user(spec, PASSWD, GROUP)
    }

    #[test]
    fn names_and_numbers_resolve_like_docker() {
        let app = resolve("app").unwrap();
        assert_eq!(
            app.user,
            User {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10, 50]
            }
        );
        assert_eq!(app.home, "/home/app");
        assert_eq!(resolve("1000").unwrap().user.gid, 1000);
        assert_eq!(
            resolve("4242").unwrap().user,
            User {
                uid: 4242,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(
            resolve("app:staff").unwrap().user,
            User {
                uid: 1000,
                gid: 50,
                additional_gids: vec![]
            }
        );
        assert_eq!(resolve("1000:77").unwrap().user.gid, 77);
        assert_eq!(resolve("").unwrap().user, User::default());
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(matches!(
            resolve("nobody"),
            Err(Error::UnknownUser { kind: "user", .. })
        ));
        assert!(matches!(
            resolve("app:nogroup"),
            Err(Error::UnknownUser { kind: "group", .. })
        ));
    }
}
