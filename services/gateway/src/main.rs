use std::process::ExitCode;

fn main() -> ExitCode {
    yy_runtime::main_with(yy_gateway::SPEC, yy_gateway::run)
}
