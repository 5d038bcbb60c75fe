use clap::Parser;

fn main() {
    let cli = droptrace::cli::Cli::parse();
    if let Err(e) = droptrace::commands::run(cli) {
        eprintln!("droptrace: error: {e}");
        std::process::exit(e.exit_code());
    }
}
