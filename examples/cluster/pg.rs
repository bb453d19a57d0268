//! A private PostgreSQL cluster in a temporary directory, on a free port,
//! for the demo and the crash test, stopped (`pg_ctl stop -m immediate`)
//! and removed when dropped — also when a panic unwinds.
//!
//! PostgreSQL refuses to run as root, so under root the server runs as
//! `nobody` (through `runuser`), in a directory that user owns.

use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the server binaries were looked for, and how to get them: the
/// error the demo prints when PostgreSQL is missing.
#[derive(Debug)]
pub(crate) struct Missing {
    looked_in: Vec<PathBuf>,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "PostgreSQL's server programs (initdb, pg_ctl, postgres) were not found."
        )?;
        writeln!(
            f,
            "Looked in $TASKWEAVE_PG_BIN, $PATH and /usr/lib/postgresql/*/bin:"
        )?;
        for dir in &self.looked_in {
            writeln!(f, "  {}", dir.display())?;
        }
        writeln!(
            f,
            "Install the server (any version from 12 on), then run again:"
        )?;
        writeln!(f, "  Debian/Ubuntu: apt-get install postgresql")?;
        writeln!(f, "  Fedora/RHEL:   dnf install postgresql-server")?;
        writeln!(f, "  macOS:         brew install postgresql@15")?;
        write!(
            f,
            "or set TASKWEAVE_PG_BIN to the directory that holds initdb and pg_ctl."
        )
    }
}

/// Why the private cluster could not start.
#[derive(Debug)]
pub(crate) enum PgError {
    /// No server binaries.
    Missing(Missing),
    /// A step failed: which, and what it printed.
    Step {
        /// The step.
        step: &'static str,
        /// Its output or the I/O error.
        detail: String,
    },
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::Missing(missing) => missing.fmt(f),
            PgError::Step { step, detail } => write!(f, "PostgreSQL: {step} failed: {detail}"),
        }
    }
}

impl std::error::Error for PgError {}

/// The directory holding `initdb` and `pg_ctl`: `$TASKWEAVE_PG_BIN`, then
/// `$PATH`, then the newest `/usr/lib/postgresql/<version>/bin`.
///
/// # Errors
///
/// [`Missing`] naming every place looked in.
pub(crate) fn find_binaries() -> Result<PathBuf, Missing> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("TASKWEAVE_PG_BIN") {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versioned.sort();
    candidates.extend(versioned.into_iter().rev().map(|(_, dir)| dir));
    let found = candidates
        .iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file());
    match found {
        Some(dir) => Ok(dir.clone()),
        None => {
            candidates.dedup();
            Err(Missing {
                looked_in: candidates,
            })
        }
    }
}

/// A running private cluster; dropping it stops the server and removes
/// its directory.
#[derive(Debug)]
pub(crate) struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
    stopped: bool,
}

impl PgCluster {
    /// Creates a cluster in a fresh temporary directory and starts it on a
    /// free port of 127.0.0.1, with trust authentication for local users
    /// and PostgreSQL's durability defaults (fsync, synchronous commit).
    ///
    /// # Errors
    ///
    /// [`PgError::Missing`] without server binaries, [`PgError::Step`] when
    /// a step fails.
    pub(crate) fn start() -> Result<Self, PgError> {
        let bin = find_binaries().map_err(PgError::Missing)?;
        let run_as = is_root().then_some("nobody");
        let unique = format!(
            "taskweave-pg-{}-{}",
            std::process::id(),
            super::model::wall_ms()
        );
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).map_err(|e| step("create the directory", e))?;
        let mut cluster = PgCluster {
            dir,
            bin,
            port: free_port().map_err(|e| step("find a free port", e))?,
            run_as,
            stopped: true,
        };
        if let Some(user) = run_as {
            let dir = cluster.dir.display().to_string();
            checked(
                "chown the directory",
                Command::new("chown").args([user, &dir]).output(),
            )?;
        }
        let data = cluster.data();
        let initdb = cluster.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        ]);
        checked("initdb", initdb.output())?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=50",
            cluster.port,
            cluster.dir.display()
        );
        let log = cluster.dir.join("server.log");
        let start = cluster
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        cluster.stopped = false;
        checked("pg_ctl start", start.output())?;
        Ok(cluster)
    }

    /// A libpq connection string for the cluster's `postgres` database.
    pub(crate) fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=10",
            self.port
        )
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> CommandLine {
        let path = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        command.current_dir(&self.dir);
        CommandLine(command)
    }

    /// Stops the server at once (no checkpoint: the data is thrown away).
    pub(crate) fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            let data = self.data();
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A command under construction; a newtype so the builder calls chain by
/// value.
struct CommandLine(Command);

impl CommandLine {
    fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.0.arg(arg);
        self
    }
    fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, args: I) -> Self {
        self.0.args(args);
        self
    }
    fn output(mut self) -> std::io::Result<Output> {
        self.0.output()
    }
}

fn step(step: &'static str, error: impl fmt::Display) -> PgError {
    PgError::Step {
        step,
        detail: error.to_string(),
    }
}

fn checked(name: &'static str, output: std::io::Result<Output>) -> Result<(), PgError> {
    let output = output.map_err(|e| step(name, e))?;
    if output.status.success() {
        Ok(())
    } else {
        let mut detail = String::from_utf8_lossy(&output.stderr).into_owned();
        detail.push_str(&String::from_utf8_lossy(&output.stdout));
        Err(step(name, detail.trim()))
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn is_root() -> bool {
    // The effective uid from /proc (Linux); elsewhere assume not root.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// The server's log, for a failure message.
pub(crate) fn server_log(cluster: &PgCluster) -> String {
    let path: &Path = &cluster.dir.join("server.log");
    std::fs::read_to_string(path).unwrap_or_default()
}
