use std::process::ExitCode;

fn main() -> ExitCode {
    match crossclr::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`crossclr loss ... | head`): nothing left to say.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole chain on one line, the way a user reads it; no backtrace for user errors.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
