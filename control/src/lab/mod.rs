//! `weft lab`: labs from YAML files (networks, nodes in namespaces, their links, commands,
//! impairments, hosts with their own daemons); a thin client of the API plus netns plumbing.

use std::path::{Path, PathBuf};

use clap::Subcommand;

mod apply;
mod check;
mod file;
mod hosts;
mod locate;
mod names;
mod netns;
mod plan;
mod show;
mod state;

/// What went wrong with a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The file is not a valid lab: nothing was made.
    #[error("{message}")]
    Invalid {
        line: Option<usize>,
        message: String,
    },
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Api(String),
    #[error("{0}")]
    NotUp(String),
}

#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// Make the lab a file describes, or change a running one to match it (only the
    /// difference is applied)
    Up {
        file: PathBuf,
        /// Use this lab name instead of the file's `name:`
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove everything a lab made (by its name, or the file it came from)
    Down {
        /// Lab name or file
        lab: String,
        /// Use this lab name instead of the file's `name:`
        #[arg(long)]
        name: Option<String>,
    },
    /// List the labs that are up
    Ls,
    /// Show a lab: hosts, networks, nodes and their links
    Inspect { name: String },
    /// Run a command in a node's (or a host's) namespace
    Exec {
        name: String,
        /// Node or host
        node: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

/// Runs one `weft lab` command against the daemon at `socket`.
pub async fn run(socket: &Path, json: bool, command: LabCommand) -> Result<(), LabError> {
    match command {
        LabCommand::Up { file, name } => up(socket, &file, name).await,
        LabCommand::Down { lab, name } => down(socket, &lab, name).await,
        LabCommand::Ls => show::ls(socket, json),
        LabCommand::Inspect { name } => show::inspect(socket, json, &name),
        LabCommand::Exec { name, node, cmd } => show::exec(socket, &name, &node, &cmd),
    }
}

/// Reads and checks a whole lab file: every problem, each with its line and field.
fn load_file(path: &Path, name: Option<String>) -> Result<file::LabFile, LabError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LabError::Io(format!("cannot read lab file {}: {e}", path.display())))?;
    let shown = path.display();
    let mut f = file::parse(&text).map_err(|e| match e {
        LabError::Invalid { line, message } => LabError::Invalid {
            line,
            message: format!("invalid lab file {shown}: {message}"),
        },
        other => other,
    })?;
    if let Some(n) = name {
        f.name = n;
    }
    let problems = check::check(&f);
    if let Some(first) = problems.first() {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| match locate::nearest_line(&text, &p.path) {
                Some(l) => format!("  {shown}:{l}: {}: {}", p.path, p.message),
                None => format!("  {shown}: {}: {}", p.path, p.message),
            })
            .collect();
        return Err(LabError::Invalid {
            line: locate::nearest_line(&text, &first.path),
            message: format!(
                "invalid lab file {shown} ({} problem{}; nothing was made):\n{}",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" },
                lines.join("\n")
            ),
        });
    }
    Ok(f)
}

async fn up(socket: &Path, path: &Path, name: Option<String>) -> Result<(), LabError> {
    let f = load_file(path, name)?;
    let want = plan::desired(&f);
    let _lock = state::lock(socket, &f.name)?;
    let mut record = state::load(socket, &f.name)?.unwrap_or_else(|| state::Record {
        name: f.name.clone(),
        ..state::Record::default()
    });
    record.file = Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()));
    let mut a = apply::Applier::new(socket.to_owned(), record, want);
    a.refresh_from_ports().await;
    let (record, want) = (a.record, a.want);
    let dead: Vec<String> = record
        .daemons
        .iter()
        .filter(|(_, d)| !hosts::alive(d))
        .map(|(h, _)| h.clone())
        .collect();
    let steps = plan::diff_dead(&record.parts, &want, &dead);
    let mut a = apply::Applier::new(socket.to_owned(), record, want);
    if steps.is_empty() {
        println!("lab {}: up to date, nothing to change", f.name);
        return Ok(());
    }
    a.run(&steps).await?;
    println!(
        "lab {}: up ({} change{})",
        f.name,
        steps.len(),
        if steps.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

async fn down(socket: &Path, lab: &str, name: Option<String>) -> Result<(), LabError> {
    let p = Path::new(lab);
    let lab_name = match name {
        Some(n) => n,
        None if p.is_file() => load_file(p, None)?.name,
        None => lab.to_owned(),
    };
    let _lock = state::lock(socket, &lab_name)?;
    let Some(record) = state::load(socket, &lab_name)? else {
        let _ = state::remove(socket, &lab_name);
        return Err(LabError::NotUp(format!(
            "no lab {lab_name} is up (no record {}); `weft lab ls` lists the labs",
            state::record_path(socket, &lab_name).display()
        )));
    };
    let steps = plan::diff(&record.parts, &plan::Parts::default());
    let mut a = apply::Applier::new(socket.to_owned(), record, plan::Parts::default());
    a.run(&steps).await?;
    state::remove(socket, &lab_name)?;
    println!("lab {lab_name}: down");
    Ok(())
}
