//! Command-line flags of `run` and `echo`, parsed by hand (a dozen flags do not need an
//! argument-parser dependency in the benchmark's build).

use std::time::Duration;

use crate::echo::{Canned, EchoConfig};
use crate::proto::{Parameter, TensorSpec};
use crate::rest::Encoding;
use crate::run::{RunConfig, default_connections};

/// `--help`.
pub const USAGE: &str = "\
ferroserve-loadgen run --target HOST:PORT --model NAME --input NAME:DATATYPE:DIMS [...]
    Closed-loop KServe v2 load (gRPC, or REST with --http); prints one JSON object (requests, errors by code,
    infer/s, rows/s, latency percentiles in µs, the window in Unix ns, client CPU).
    --input NAME:DATATYPE:DIMS  one row's dimensions, comma-separated (repeat per input),
                                e.g. input:FP32:64 or input:FP32:3,64,64
    --rows N             rows per request, put in front of every input's DIMS [1]
    --parameter KEY=VALUE  a request parameter every request carries (repeat per key):
                         true/false is a bool, an integer an int64, else a string,
                         e.g. priority=1 or timeout=20000
    --model-version V    [\"\": the server's choice]
    --concurrency N      workers, each with one request in flight [1]
    --connections N      HTTP/2 connections the workers share [one per worker]
    --stream             ModelStreamInfer, one stream per worker (send, await, repeat)
    --typed              inputs as typed contents (e.g. fp32_contents, packed), not raw
    --http json|binary   the v2 REST endpoint (POST /v2/models/NAME/infer) instead of gRPC,
                         one HTTP/1.1 keep-alive connection per worker; tensors as JSON
                         `data`, or binary (Triton's binary tensor data extension, outputs
                         asked in binary too); a non-2xx answer counts as `HTTP <status>`
    --warmup-s S         load before the measured window [1]
    --window-s S         measured window [3]
    --timeout-s S        an answer slower than this is DEADLINE_EXCEEDED [30]
    --threads N          tokio threads [the CPUs this process may use]

ferroserve-loadgen echo --port P --output NAME:DATATYPE:DIMS [...]
    The native transport ceiling: answers ModelInfer and every ModelStreamInfer message with
    one canned ModelInferResponse of `--rows` rows of the output (zeros), built at start-up.
    --host H             [127.0.0.1]
    --model NAME         model name in the answer [model]
    --rows N             rows in the answer [1]
    --threads N          tokio threads [1, like ferroserve's front end]";

/// What to do.
#[derive(Debug)]
pub enum Command {
    /// Measure.
    Run(RunConfig),
    /// Serve the canned answer.
    Echo(EchoConfig),
    /// Print the usage.
    Help,
}

/// Why the command line was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    /// No `run` or `echo`.
    #[error("the first argument is run or echo")]
    NoCommand,
    /// A flag this command does not take.
    #[error("unknown flag {0}")]
    UnknownFlag(String),
    /// A flag without its value.
    #[error("{0} needs a value")]
    MissingValue(String),
    /// A value that does not parse.
    #[error("{flag}: {value:?} is not {expected}")]
    BadValue {
        /// The flag.
        flag: String,
        /// What was given.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A required flag is missing.
    #[error("{0} is required")]
    Required(&'static str),
    /// A tensor or parameter argument was refused.
    #[error(transparent)]
    Tensor(#[from] crate::proto::WireError),
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, CliError> {
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        return Ok(Command::Help);
    }
    let (command, rest) = args.split_first().ok_or(CliError::NoCommand)?;
    let flags = Flags::split(rest)?;
    match command.as_str() {
        "run" => parse_run(&flags).map(Command::Run),
        "echo" => parse_echo(&flags).map(Command::Echo),
        _ => Err(CliError::NoCommand),
    }
}

/// `--flag value`, `--flag=value` and bare `--stream`, in order.
struct Flags(Vec<(String, Option<String>)>);

/// Flags that take no value.
const SWITCHES: [&str; 2] = ["--stream", "--typed"];

impl Flags {
    fn split(args: &[String]) -> Result<Self, CliError> {
        let mut flags = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if !arg.starts_with("--") {
                return Err(CliError::UnknownFlag(arg.clone()));
            }
            if let Some((flag, value)) = arg.split_once('=') {
                flags.push((flag.to_owned(), Some(value.to_owned())));
            } else if SWITCHES.contains(&arg.as_str()) {
                flags.push((arg.clone(), None));
            } else {
                let value = args
                    .next()
                    .ok_or_else(|| CliError::MissingValue(arg.clone()))?;
                flags.push((arg.clone(), Some(value.clone())));
            }
        }
        Ok(Flags(flags))
    }

    fn check_known(&self, known: &[&str]) -> Result<(), CliError> {
        match self
            .0
            .iter()
            .find(|(flag, _)| !known.contains(&flag.as_str()))
        {
            Some((flag, _)) => Err(CliError::UnknownFlag(flag.clone())),
            None => Ok(()),
        }
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(flag, _)| flag == name)
            .filter_map(|(_, value)| value.as_deref())
    }

    fn last(&self, name: &str) -> Option<&str> {
        self.all(name).last()
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(flag, _)| flag == name)
    }

    fn number<T: std::str::FromStr + PartialOrd + Default>(
        &self,
        name: &str,
        default: T,
        expected: &'static str,
    ) -> Result<T, CliError> {
        let Some(value) = self.last(name) else {
            return Ok(default);
        };
        match value.parse::<T>() {
            Ok(number) if number > T::default() => Ok(number),
            _ => Err(CliError::BadValue {
                flag: name.to_owned(),
                value: value.to_owned(),
                expected,
            }),
        }
    }

    /// A duration in seconds; zero only where `zero_ok` (a warm-up may be skipped, a window
    /// may not be empty).
    fn seconds(&self, name: &str, default: f64, zero_ok: bool) -> Result<Duration, CliError> {
        let value = self.last(name);
        let seconds = value.map_or(Ok(default), str::parse::<f64>);
        match seconds
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
        {
            Some(duration) if zero_ok || !duration.is_zero() => Ok(duration),
            _ => Err(CliError::BadValue {
                flag: name.to_owned(),
                value: value.unwrap_or_default().to_owned(),
                expected: "a positive number of seconds",
            }),
        }
    }
}

const RUN_FLAGS: [&str; 15] = [
    "--target",
    "--model",
    "--model-version",
    "--input",
    "--parameter",
    "--rows",
    "--concurrency",
    "--connections",
    "--stream",
    "--typed",
    "--http",
    "--warmup-s",
    "--window-s",
    "--timeout-s",
    "--threads",
];

fn parse_run(flags: &Flags) -> Result<RunConfig, CliError> {
    flags.check_known(&RUN_FLAGS)?;
    let inputs = flags
        .all("--input")
        .map(TensorSpec::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if inputs.is_empty() {
        return Err(CliError::Required("--input"));
    }
    let parameters = flags
        .all("--parameter")
        .map(Parameter::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let concurrency = flags.number("--concurrency", 1, "a positive integer")?;
    let http = match flags.last("--http") {
        None => None,
        Some(value) => Some(Encoding::parse(value).ok_or_else(|| CliError::BadValue {
            flag: "--http".into(),
            value: value.to_owned(),
            expected: "json or binary",
        })?),
    };
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    Ok(RunConfig {
        target: flags
            .last("--target")
            .ok_or(CliError::Required("--target"))?
            .to_owned(),
        model: flags
            .last("--model")
            .ok_or(CliError::Required("--model"))?
            .to_owned(),
        model_version: flags.last("--model-version").unwrap_or_default().to_owned(),
        inputs,
        parameters,
        rows: flags.number("--rows", 1, "a positive integer")?,
        concurrency,
        connections: flags.number(
            "--connections",
            default_connections(concurrency),
            "a positive integer",
        )?,
        stream: flags.has("--stream"),
        typed: flags.has("--typed"),
        http,
        warmup: flags.seconds("--warmup-s", 1.0, true)?,
        window: flags.seconds("--window-s", 3.0, false)?,
        timeout: flags.seconds("--timeout-s", 30.0, false)?,
        threads: flags.number("--threads", cpus, "a positive integer")?,
    })
}

const ECHO_FLAGS: [&str; 6] = [
    "--host",
    "--port",
    "--model",
    "--output",
    "--rows",
    "--threads",
];

fn parse_echo(flags: &Flags) -> Result<EchoConfig, CliError> {
    flags.check_known(&ECHO_FLAGS)?;
    let port = flags.last("--port").ok_or(CliError::Required("--port"))?;
    let port: u16 = port.parse().map_err(|_| CliError::BadValue {
        flag: "--port".into(),
        value: port.to_owned(),
        expected: "a port number",
    })?;
    let output = TensorSpec::parse(
        flags
            .last("--output")
            .ok_or(CliError::Required("--output"))?,
    )?;
    let rows = flags.number("--rows", 1, "a positive integer")?;
    let model = flags.last("--model").unwrap_or("model");
    Ok(EchoConfig {
        address: format!("{}:{port}", flags.last("--host").unwrap_or("127.0.0.1")),
        threads: flags.number("--threads", 1, "a positive integer")?,
        canned: Canned::answer(model, &output, rows)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn a_run_takes_its_flags_and_defaults() {
        let Ok(Command::Run(config)) = parse(&args(
            "run --target 127.0.0.1:8001 --model mlp --input input:FP32:64 --rows=64 \
             --concurrency 40 --stream --warmup-s 0 --window-s 1.5",
        )) else {
            panic!("a valid run")
        };
        assert_eq!(config.target, "127.0.0.1:8001");
        assert_eq!(config.inputs[0].row_shape, vec![64]);
        assert_eq!((config.rows, config.concurrency), (64, 40));
        assert_eq!(config.connections, 40);
        assert!(config.stream);
        assert_eq!(config.warmup, Duration::ZERO);
        assert_eq!(config.window, Duration::from_millis(1500));
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert!(config.parameters.is_empty());
    }

    #[test]
    fn a_run_takes_request_parameters() {
        let Ok(Command::Run(config)) = parse(&args(
            "run --target a:1 --model m --input x:FP32:1 --parameter priority=1 \
             --parameter=timeout=20000 --parameter tag=fast",
        )) else {
            panic!("a valid run")
        };
        let keys: Vec<&str> = config.parameters.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["priority", "timeout", "tag"]);
        assert_eq!(
            config.parameters[1].value,
            crate::proto::ParameterValue::Int64(20_000)
        );
        assert!(matches!(
            parse(&args(
                "run --target a:1 --model m --input x:FP32:1 --parameter priority"
            )),
            Err(CliError::Tensor(crate::proto::WireError::ParameterSyntax(
                _
            )))
        ));
    }

    #[test]
    fn typed_is_a_switch() {
        let Ok(Command::Run(config)) = parse(&args(
            "run --target a:1 --model m --typed --input x:FP32:1 --stream",
        )) else {
            panic!("a valid run")
        };
        assert!(config.typed && config.stream);
        let Ok(Command::Run(config)) = parse(&args("run --target a:1 --model m --input x:FP32:1"))
        else {
            panic!("a valid run")
        };
        assert!(!config.typed);
    }

    #[test]
    fn http_takes_its_encoding() {
        let Ok(Command::Run(config)) = parse(&args(
            "run --target a:1 --model m --input x:FP32:1 --http binary --concurrency 4",
        )) else {
            panic!("a valid run")
        };
        assert_eq!(config.http, Some(Encoding::Binary));
        assert_eq!(config.connections, 4);
        let Ok(Command::Run(config)) = parse(&args(
            "run --target a:1 --model m --input x:FP32:1 --http=json",
        )) else {
            panic!("a valid run")
        };
        assert_eq!(config.http, Some(Encoding::Json));
        assert!(matches!(
            parse(&args(
                "run --target a:1 --model m --input x:FP32:1 --http xml"
            )),
            Err(CliError::BadValue { .. })
        ));
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        let error = |text: &str| parse(&args(text)).expect_err(text);
        assert_eq!(error("run --model m"), CliError::Required("--input"));
        assert_eq!(
            error("run --target a:1 --model m --input x:FP32:1 --bogus 1"),
            CliError::UnknownFlag("--bogus".into())
        );
        assert_eq!(
            error("run --target a:1 --model m --input x:FP32:1 --concurrency"),
            CliError::MissingValue("--concurrency".into())
        );
        assert!(matches!(
            error("run --target a:1 --model m --input x:FP32:1 --concurrency 0"),
            CliError::BadValue { .. }
        ));
        assert_eq!(error("serve"), CliError::NoCommand);
        assert_eq!(
            error("echo --output o:FP32:1"),
            CliError::Required("--port")
        );
    }

    #[test]
    fn an_echo_listens_where_asked() {
        let Ok(Command::Echo(config)) = parse(&args(
            "echo --port 0 --model mlp --output output:FP32:10 --rows 64",
        )) else {
            panic!("a valid echo")
        };
        assert_eq!(config.address, "127.0.0.1:0");
        assert_eq!(config.threads, 1);
    }
}
