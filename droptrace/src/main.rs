use clap::Parser;

fn main() {
    large_blocks_go_back();
    let cli = droptrace::cli::Cli::parse();
    if let Err(e) = droptrace::commands::run(cli) {
        if e.is_closed_pipe() {
            return;
        }
        eprintln!("droptrace: error: {e}");
        std::process::exit(e.exit_code());
    }
}

/// Blocks of 1 MiB and more (a port scan's snapshots and tables, made and freed every
/// tick) are mapped on their own and given back when freed. glibc would otherwise raise
/// that threshold after the first such free and serve them from the heap, whose freed
/// part stays resident: the process would carry its peak, not what it holds.
fn large_blocks_go_back() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes a tunable of glibc's allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
