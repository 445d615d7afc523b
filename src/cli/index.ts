// The `osp` command line: `osp <command> --help` documents every flag of every command.
import { Command } from 'commander';
import { UsageError } from './common';
import { trainCommands } from './train';
import { evalCommands } from './eval';

export function buildProgram(): Command {
  const program = new Command('osp')
    .description('Online Self-Preferring alignment of Llama-family models (TypeScript over CUDA/C++ kernels)')
    .showHelpAfterError('(run with --help for the settings)')
    .configureOutput({ outputError: (s, write) => write(s) });
  trainCommands(program);
  evalCommands(program);
  for (const extra of extraCommands) extra(program);
  return program;
}

/** Other command groups register here (eval, generate, demo). */
const extraCommands: ((program: Command) => void)[] = [];
export function registerCommands(fn: (program: Command) => void): void {
  extraCommands.push(fn);
}

/** Runs the CLI; returns the exit code (bad settings: 2 with one line naming the setting). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    const err = e as { code?: string; exitCode?: number; message?: string };
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? 0 : (err.exitCode ?? 2);
    }
    if (e instanceof UsageError) {
      process.stderr.write(`osp: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`osp: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env.OSP_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}
