use std::process::ExitCode;

fn main() -> ExitCode {
    yy_runtime::main_with(yy_conversation::SPEC, yy_conversation::run)
}
