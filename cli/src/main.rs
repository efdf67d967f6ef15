//! `segwal`: the command-line tool for segwal logs.
//!
//! `info`, `dump`, `verify` and `tail` open a log read-only (no lock, no
//! write), so they work beside a live writer; `repair` and `append` take
//! the log's lock; `demo` shows the main job in a temporary directory.
//! `segwal --help` lists the commands and the exit codes.
//!
//! Every failure is one line on stderr, `segwal: <what and where>`, with
//! exit code 2; `verify` finding problems and `repair` refusing exit 1.
//! Nothing the user or the disk does can make it panic: a panic would be a
//! bug, and even then it prints one line.

mod append;
mod args;
mod demo;
mod dump;
mod error;
mod info;
mod log;
mod records;
mod repair;
mod tail;
mod text;
mod verify;

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::{EXIT_ERROR, Outcome, is_broken_pipe, one_line};

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "segwal: internal error, a bug in segwal (please report it): {}",
            one_line(&info.to_string())
        );
    }));
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        // `segwal dump | head`: the reader has all it wanted.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("segwal: {}", one_line(&format!("{error:#}")));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(command: Command) -> anyhow::Result<Outcome> {
    let stdout = io::stdout();
    // The demo and the writer it runs print lines as they go; the other
    // commands buffer, and flush at the end (tail also after each poll).
    let mut out = BufWriter::new(stdout.lock());
    let outcome = match command {
        Command::Info { dir, format } => info::run(&dir, format, &mut out),
        Command::Dump {
            dir,
            from,
            to,
            format,
        } => dump::run(&dir, from, to, format, &mut out),
        Command::Verify { dir, format } => verify::run(&dir, format, &mut out),
        Command::Repair {
            dir,
            truncate_at_corruption,
            dry_run,
        } => repair::run(&dir, truncate_at_corruption, dry_run, &mut out),
        Command::Append {
            dir,
            length_prefixed,
            segment_size,
        } => {
            let mut input = io::stdin().lock();
            append::run(&dir, length_prefixed, segment_size, &mut input, &mut out)
        }
        Command::Tail {
            dir,
            follow,
            lines,
            format,
            poll_ms,
        } => {
            let args = tail::TailArgs {
                follow,
                lines,
                format,
                poll: Duration::from_millis(poll_ms.max(1)),
            };
            tail::run(&dir, args, &mut out)
        }
        Command::Demo => {
            drop(out);
            return demo::run(&mut io::stdout().lock());
        }
        Command::DemoWriter {
            dir,
            threads,
            segment_size,
        } => {
            drop(out);
            return demo::writer(&dir, threads, segment_size);
        }
    };
    // What was printed before an error still goes out, then the error.
    let flushed = out.flush().context("writing stdout");
    let outcome = outcome?;
    flushed?;
    Ok(outcome)
}
