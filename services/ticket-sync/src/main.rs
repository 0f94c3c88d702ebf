use std::process::ExitCode;

fn main() -> ExitCode {
    yy_runtime::main_with(yy_ticket_sync::SPEC, yy_ticket_sync::run)
}
