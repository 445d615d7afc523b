// The `osp` command line: `osp <command> --help` documents every flag of every command.
import * as fs from 'fs';
import * as path from 'path';
import { Command } from 'commander';
import { SettingsError } from '../osp/settings';
import { MemoryPlanError } from '../osp/memoryCheck';
import { escapeControl } from '../util/escape';
import { UsageError, takeExitCode } from './common';
import { trainCommands } from './train';
import { evalCommands } from './eval';
import { demoCommand } from './demo';
import { mergeCommand } from './merge';

/** The version in package.json (two folders up from src/cli and from dist/cli). */
function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function buildProgram(): Command {
  const program = new Command('osp')
    .description('Online Self-Preferring alignment of Llama-family models (TypeScript over CUDA/C++ kernels)')
    .version(packageVersion(), '-V, --version')
    // Parse errors are printed by main() as one line with a hint, never by commander.
    .configureOutput({ outputError: () => undefined });
  trainCommands(program);
  evalCommands(program);
  mergeCommand(program);
  demoCommand(program);
  // Parse errors of any command: thrown (main turns them into exit code 2 and one line), never process.exit.
  for (const cmd of program.commands) {
    cmd.configureOutput({ outputError: () => undefined });
    cmd.exitOverride((err) => {
      throw err;
    });
  }
  return program;
}

/** Runs the CLI; returns the exit code (bad settings: 2 with one line naming the setting). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  takeExitCode();
  try {
    await program.parseAsync(argv);
    return takeExitCode();
  } catch (e) {
    const err = e as { code?: string; exitCode?: number; message?: string };
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' || err.exitCode === 0) return 0;
      const command = argv.slice(2).find((a) => program.commands.some((c) => c.name() === a));
      process.stderr.write(`osp: ${String(err.message).replace(/^error: /, '')} (osp ${command ? `${command} ` : ''}--help lists the settings)\n`);
      return 2;
    }
    // Messages may quote data (a prompt, a file name): control bytes are shown escaped, never sent to the terminal.
    if (e instanceof UsageError) {
      process.stderr.write(`osp: ${escapeControl(e.message)}\n`);
      return 2;
    }
    if (e instanceof MemoryPlanError) {
      // The plan's table, line by line (escapeControl would fold it into one line).
      process.stderr.write(`osp: ${escapeControl(e.message)}\n${e.table.split('\n').map(escapeControl).join('\n')}\n`);
      return 1;
    }
    if (e instanceof SettingsError) {
      // The library names settings in camelCase; the command line names its flag.
      const flag = e.setting === 'settings' ? '--config' : `--${e.setting.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      process.stderr.write(`osp: ${escapeControl(`${flag}${e.value === undefined ? '' : ` ${e.value}`}: ${e.problem}`)}\n`);
      return e.kind === 'data' ? 1 : 2; // usage errors 2; malformed data, like model and run errors, 1
    }
    process.stderr.write(`osp: ${escapeControl(e instanceof Error ? e.message : String(e))}\n`);
    if (process.env.OSP_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}
