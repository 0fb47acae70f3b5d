//! `pail completions SHELL`: a completion script for bash, zsh, fish, elvish or PowerShell.

use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  pail completions bash > ~/.local/share/bash-completion/completions/pail
  pail completions zsh > ~/.zfunc/_pail       (with fpath+=~/.zfunc in ~/.zshrc)
  pail completions fish > ~/.config/fish/completions/pail.fish")]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut super::command(), "pail", &mut out);
    Ok(())
}
