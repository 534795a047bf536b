//! `ferroserve-loadgen run ...` (print one JSON object) and `ferroserve-loadgen echo ...`
//! (serve until killed); `--help` lists the flags.

use std::process::ExitCode;

use ferroserve_loadgen::cli::{self, Command};
use ferroserve_loadgen::{Echo, report, run};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::parse(&args) {
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Run(config)) => match run(&config) {
            Ok(summary) => {
                println!("{}", report::json(&summary));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("ferroserve-loadgen run: {error}");
                ExitCode::FAILURE
            }
        },
        Ok(Command::Echo(config)) => match Echo::start(config) {
            Ok(echo) => {
                eprintln!("ferroserve-loadgen echo: listening on {}", echo.address());
                echo.wait();
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("ferroserve-loadgen echo: {error}");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("ferroserve-loadgen: {error}\n\n{}", cli::USAGE);
            ExitCode::from(2)
        }
    }
}
