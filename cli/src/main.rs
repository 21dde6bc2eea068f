//! `berth`: see [`berth_cli`].

fn main() {
    std::process::exit(berth_cli::main());
}
