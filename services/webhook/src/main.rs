use std::process::ExitCode;

fn main() -> ExitCode {
    yy_runtime::main_with(yy_webhook::SPEC, yy_webhook::run)
}
