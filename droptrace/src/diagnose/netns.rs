//! Network namespaces by inode: drops carry the inode, evidence is gathered by path.
use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// Known namespaces: inode -> a path that opens it, and a name for people.
#[derive(Debug, Default, Clone)]
pub struct Namespaces {
    by_inode: BTreeMap<u32, (PathBuf, String)>,
}

impl Namespaces {
    /// Scans /run/netns (named namespaces) and /proc/*/ns/net (every process's).
    pub fn scan() -> Namespaces {
        let mut ns = Namespaces::default();
        if let Ok(me) = std::fs::metadata("/proc/self/ns/net") {
            ns.insert(
                me.ino(),
                PathBuf::from("/proc/self/ns/net"),
                "droptrace's own".into(),
            );
        }
        if let Ok(dir) = std::fs::read_dir("/run/netns") {
            for e in dir.flatten() {
                if let Ok(meta) = std::fs::metadata(e.path()) {
                    let name = e.file_name().to_string_lossy().into_owned();
                    ns.insert(meta.ino(), e.path(), name);
                }
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let pid = e.file_name().to_string_lossy().into_owned();
                if !pid.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let path = e.path().join("ns/net");
                if let Ok(meta) = std::fs::metadata(&path) {
                    let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                    ns.insert(meta.ino(), path, format!("of {} (pid {pid})", comm.trim()));
                }
            }
        }
        ns
    }

    fn insert(&mut self, inode: u64, path: PathBuf, name: String) {
        if let Ok(inode) = u32::try_from(inode) {
            self.by_inode.entry(inode).or_insert((path, name));
        }
    }

    /// Adds a namespace the user named (any path, e.g. /var/run/docker/netns/x); it takes
    /// precedence for naming and entering. Returns its inode.
    pub fn add(&mut self, path: &Path) -> std::io::Result<u32> {
        let inode = u32::try_from(std::fs::metadata(path)?.ino())
            .map_err(|_| std::io::Error::other("not a namespace file"))?;
        let name = match path.strip_prefix("/run/netns") {
            Ok(rest) => rest.display().to_string(),
            Err(_) => path.display().to_string(),
        };
        if self
            .by_inode
            .get(&inode)
            .is_none_or(|(_, n)| n != "droptrace's own")
        {
            self.by_inode.insert(inode, (path.to_path_buf(), name));
        }
        Ok(inode)
    }

    /// Inode of droptrace's own namespace (0 if unknown).
    pub fn own_inode(&self) -> u32 {
        std::fs::metadata("/proc/self/ns/net").map_or(0, |m| u32::try_from(m.ino()).unwrap_or(0))
    }

    /// Every namespace: inode and a path that opens it.
    pub fn all(&self) -> impl Iterator<Item = (u32, &PathBuf)> {
        self.by_inode.iter().map(|(i, (p, _))| (*i, p))
    }

    pub fn len(&self) -> usize {
        self.by_inode.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_inode.is_empty()
    }

    pub fn path(&self, inode: u32) -> Option<&PathBuf> {
        self.by_inode.get(&inode).map(|(p, _)| p)
    }

    /// A short label for tables: `web` (/run/netns/web), `host` (droptrace's own),
    /// `nginx:812` (a process's), or the inode.
    pub fn label(&self, inode: u32) -> String {
        match self.by_inode.get(&inode) {
            Some((_, name)) if name == "droptrace's own" => "host".into(),
            Some((p, name)) if p.starts_with("/run/netns") => name.clone(),
            Some((p, _)) if p.starts_with("/proc") => {
                let pid = p.components().nth(2).map_or_else(String::new, |c| {
                    c.as_os_str().to_string_lossy().into_owned()
                });
                let comm = std::fs::read_to_string(Path::new("/proc").join(&pid).join("comm"))
                    .unwrap_or_default();
                format!("{}:{pid}", comm.trim())
            }
            Some((p, _)) => p.display().to_string(),
            None => inode.to_string(),
        }
    }

    /// "netns web", "netns of nginx (pid 812)", or the inode.
    pub fn describe(&self, inode: u32) -> String {
        match self.by_inode.get(&inode) {
            Some((_, name)) if name == "droptrace's own" => "the host namespace".into(),
            Some((p, name)) if p.starts_with("/run/netns") => format!("netns {name}"),
            Some((p, name)) if !p.starts_with("/proc") => format!("the netns at {name}"),
            Some((_, name)) => format!("the netns {name}"),
            None => format!("netns inode {inode}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_its_own_namespace() {
        let ns = Namespaces::scan();
        let me = std::fs::metadata("/proc/self/ns/net").unwrap().ino() as u32;
        assert!(ns.path(me).is_some());
        assert_eq!(ns.describe(me), "the host namespace");
        assert_eq!(ns.describe(1), "netns inode 1");
        assert_eq!(ns.label(me), "host");
        assert_eq!(ns.label(1), "1");
    }
}
