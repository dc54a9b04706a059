/** `mtproxy completion bash|zsh`: the shell completion script, generated from the commands and their options. */
import { commandNames, loadCommand } from '../cli.ts';
import type { CliCommand } from '../command.ts';
import { bashCompletion, zshCompletion } from '../completion.ts';
import { GLOBAL_OPTIONS } from '../config-source.ts';

export const command: CliCommand = {
  name: 'completion',
  summary: 'Print the shell completion script for bash or zsh',
  details:
    'Generated from the commands and their options: source <(mtproxy completion bash) in ~/.bashrc, or mtproxy completion zsh > "${fpath[1]}/_mtproxy".',
  usage: 'completion bash|zsh',
  async run(ctx) {
    const [shell, ...extra] = ctx.positionals;
    if ((shell !== 'bash' && shell !== 'zsh') || extra.length > 0) {
      ctx.err('mtproxy completion: usage: mtproxy completion bash|zsh');
      return 2;
    }
    const commands = (await Promise.all(commandNames().map(loadCommand))).filter(
      (c): c is CliCommand => c !== null,
    );
    const script =
      shell === 'bash' ? bashCompletion(commands, GLOBAL_OPTIONS) : zshCompletion(commands, GLOBAL_OPTIONS);
    ctx.out(script.trimEnd());
    return 0;
  },
};
