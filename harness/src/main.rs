//! The `firedrill` command. Library code never prints; this installs the subscriber,
//! turns results into output and exit codes (0 tables match, 1 a table differs,
//! 2 the harness failed).

fn main() -> std::process::ExitCode {
    firedrill::cli::main()
}
