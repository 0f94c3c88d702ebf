use std::process::ExitCode;

fn main() -> ExitCode {
    yy_runtime::main_with(yy_routing::SPEC, yy_routing::run)
}
