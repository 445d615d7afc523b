// The training commands: train (online self-preferring), self-reward, dpo (offline dpo / ipo / spce),
// sft and augment (preference augmentation of the judge). Each turns its flags (and --config FILE)
// into the trainer's settings (src/osp/settings.ts, whose defaults --help shows) and calls the
// library trainer (src/osp/trainer.ts) with progress bars and Ctrl-C; nothing else happens here.
// --resume RUN_DIR continues a run with its saved settings.
import { Command, Option } from 'commander';
import * as trainer from '../osp/trainer';
import { TrainerCommand, settingDefault } from '../osp/settings';
import { Progress, UsageError, setExitCode, deviceOption, dtypeOption, installStopHandler, mergeConfig } from './common';

function loopOptions(cmd: Command): Command {
  return cmd
    .option('--out <dir>', 'run folder to create (config, metrics, samples, checkpoints, report)')
    .option('--resume <dir>', 'continue the run in this folder from its last complete checkpoint')
    .option('--batch-size <n>', 'examples (prompts or pairs) per optimizer step')
    .option('--micro-batch <n>', 'examples per forward/backward (gradients are accumulated)')
    .option('--lr <x>', 'peak learning rate')
    .option('--warmup-steps <n>', 'linear warm-up steps')
    .addOption(new Option('--schedule <kind>', 'learning-rate schedule after warm-up').choices(['constant', 'linear', 'cosine']))
    .option('--min-lr-ratio <x>', 'final learning rate of linear/cosine decay as a fraction of --lr')
    .option('--weight-decay <x>', 'AdamW decoupled weight decay (not on norm weights)')
    .option('--max-grad-norm <x>', 'global gradient-norm clipping')
    .option('--steps <n>', 'optimizer steps (default: --epochs over the data)')
    .option('--epochs <x>', 'passes over the data when --steps is not given')
    .option('--seed <n>', 'seed of the data order, sampling and pairing')
    .option('--save-every <n>', 'checkpoint every n steps (and at the end, and on Ctrl-C)')
    .option('--keep <n>', 'checkpoints to keep')
    .addOption(deviceOption())
    .addOption(dtypeOption())
    .option('--recompute', 'recompute activations per layer in the backward (less memory, one more forward)')
    .option('--limit <n>', 'use only the first n records of the data')
    .option('--skip-bad', 'skip malformed records (counted) instead of stopping at the first')
    .option('--config <file>', 'JSON file giving any of these settings (flags on the command line win)');
}

/** The trainer's defaults become commander's, so --help shows them and the values stay where they are defined. */
function withDefaults(cmd: Command, command: TrainerCommand): Command {
  for (const o of cmd.options) {
    const d = settingDefault(command, o.attributeName());
    if (d !== undefined) o.default(String(d));
  }
  return cmd;
}

/** Flags -> settings: --config merged under the command line, CLI-only flags dropped, unset flags left to the trainer. */
function settingsOf(cmd: Command, raw: Record<string, unknown>): Record<string, unknown> {
  const merged = mergeConfig(cmd, raw);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(merged)) if (v !== undefined && k !== 'config' && k !== 'resume') out[k] = v;
  return out;
}

/**
 * Runs a trainer call with progress bars, Ctrl-C (a stopped run sets exit status 130) and a
 * SettingsError turned into a usage error naming the flag. Also used by `osp demo`.
 */
export async function runWithProgress(command: TrainerCommand, start: (hooks: trainer.TrainerHooks) => Promise<trainer.RunResult>): Promise<trainer.RunResult> {
  const stop = installStopHandler(`osp ${command}`);
  const bar = new Progress(`osp ${command}`);
  const stepBar = new Progress('  step', true);
  const hooks: trainer.TrainerHooks = {
    onStart: ({ totalSteps, startStep }) => {
      bar.start(totalSteps, '');
      bar.update(startStep, 'starting');
    },
    onStepDone: (m, summary) => bar.update(m.step, summary),
    stopRequested: stop.requested,
    onStage: (stage, info) => {
      if (stage === 'generate' && info.done === 0) stepBar.start(info.total ?? 0, 'generate');
      else if (stage === 'generate') stepBar.update(info.done ?? 0, 'generate');
      else stepBar.stop();
    },
  };
  try {
    const r = await start(hooks);
    bar.stop();
    stepBar.stop();
    if (r.stopped) {
      process.stderr.write(`stopped after step ${r.lastStep}; checkpoint ${r.lastCheckpoint}\nresume with: osp ${command} --resume ${r.runDir}\n`);
      setExitCode(130); // the conventional status of a run ended by Ctrl-C
    } else {
      process.stderr.write(`done: ${r.lastStep} steps; model in ${r.finalDir}; report ${r.runDir}/report.html\n`);
    }
    return r;
  } finally {
    bar.stop();
    stepBar.stop();
    stop.dispose();
  }
}

/** The action of a training command: a new run from the settings, or --resume. */
function action(command: TrainerCommand, cmd: Command, startNew: (s: Record<string, unknown>, hooks: trainer.TrainerHooks) => Promise<trainer.RunResult>) {
  return async (raw: Record<string, unknown>) => {
    if (raw.resume !== undefined) {
      const runDir = String(raw.resume);
      await runWithProgress(command, async (hooks) => {
        const made = trainer.runCommandOf(runDir);
        if (made !== command) throw new UsageError(`--resume ${runDir}: that run was made by 'osp ${made}', not 'osp ${command}'`);
        const ignored = cmd.options.filter((o) => o.attributeName() !== 'resume' && cmd.getOptionValueSource(o.attributeName()) === 'cli').map((o) => o.long);
        if (ignored.length) process.stderr.write(`--resume continues ${runDir} with its saved settings (config.json); ignoring ${ignored.join(', ')}\n`);
        return trainer.resume(runDir, hooks);
      });
      return;
    }
    const settings = settingsOf(cmd, raw);
    if (settings.out === undefined) throw new UsageError('--out: expected a folder for the run (or --resume RUN_DIR to continue one)');
    await runWithProgress(command, (hooks) => startNew(settings, hooks));
  };
}

function onlineCommand(program: Command, name: 'train' | 'self-reward'): void {
  const selfReward = name === 'self-reward';
  const cmd = program
    .command(name)
    .description(
      selfReward
        ? 'the self-rewarding baseline: sample K responses per prompt, judge them against the blank response with the frozen model, train on best vs worst with the DPO loss'
        : 'online self-preferring (OSP): sample K responses per prompt, rank them with the frozen judge against the blank response, pair highest with lowest, train on the judged soft preferences',
    )
    .option('--model <dir>', 'the SFT model (Hugging Face folder): the policy starts here; also the frozen reference and judge')
    .option('--judge <dir>', 'a separate judge model folder (default: --model)')
    .option('--prompts <file>', 'prompts (.jsonl or .parquet)')
    .addOption(new Option('--format <kind>', 'record format of --prompts (the prompt field is used)').choices(['prompts', 'pairs', 'sft', 'hh', 'tldr']));
  if (!selfReward) {
    cmd
      .addOption(new Option('--loss <kind>', 'preference loss').choices(['spce', 'dpo', 'ipo']))
      .addOption(new Option('--pairing <kind>', 'ranked (the paper) or random (ablation)').choices(['ranked', 'random']))
      .addOption(new Option('--sampling <from>', 'sample from the policy (on-policy) or from the frozen SFT model (ablation)').choices(['policy', 'sft']));
  }
  cmd
    .option('--k <n>', 'responses sampled per prompt')
    .option('--beta <x>', 'scale of the log-ratio margin')
    .option('--temperature <x>', 'sampling temperature')
    .option('--top-p <x>', 'nucleus sampling mass')
    .option('--max-new-tokens <n>', 'longest sampled response')
    .option('--judge-max-length <n>', "longest judge instruction in tokens (default: the judge's context)")
    .option('--template <name>', 'judge template: hh, tldr, or a file with {prompt}, {a}, {b}')
    .addOption(new Option('--scorer <task>', "score samples and judge pairs with a task's programmatic scorer (metrics only; the embedded demo task: demo)").choices(['demo']));
  withDefaults(loopOptions(cmd), name);
  cmd.action(action(name, cmd, (s, hooks) => (selfReward ? trainer.selfReward(s as trainer.SelfRewardSettings, hooks) : trainer.train(s as trainer.TrainSettings, hooks))));
}

function dpoCommand(program: Command): void {
  const cmd = program
    .command('dpo')
    .description('offline preference optimisation on fixed pairs: DPO, IPO, or SPCE with soft labels from the data (strength) or from the judge')
    .option('--model <dir>', 'the SFT model (Hugging Face folder): the policy starts here and is the frozen reference')
    .option('--pairs <file>', 'preference pairs (.jsonl or .parquet)')
    .addOption(new Option('--format <kind>', 'record format of --pairs').choices(['pairs', 'hh', 'tldr']))
    .addOption(new Option('--loss <kind>', 'preference loss').choices(['dpo', 'ipo', 'spce']))
    .addOption(new Option('--labels <from>', "spce's soft labels: the data's strength field (missing = 1) or the judge").choices(['data', 'judge']))
    .option('--judge <dir>', 'judge model folder for --labels judge (default: --model)')
    .option('--template <name>', 'judge template for --labels judge: hh, tldr or a file')
    .option('--judge-max-length <n>', 'longest judge instruction in tokens')
    .option('--beta <x>', 'scale of the log-ratio margin');
  withDefaults(loopOptions(cmd), 'dpo');
  cmd.action(action('dpo', cmd, (s, hooks) => trainer.dpo(s as trainer.DpoSettings, hooks)));
}

function sftCommand(program: Command): void {
  const cmd = program
    .command('sft')
    .description('supervised fine-tuning on prompt/response pairs (prompt tokens masked in the loss)')
    .option('--model <dir>', 'the model to fine-tune (Hugging Face folder)')
    .option('--data <file>', 'examples (.jsonl or .parquet): {prompt, response}, or pairs/hh/tldr whose chosen side is used')
    .addOption(new Option('--format <kind>', 'record format of --data').choices(['sft', 'pairs', 'hh', 'tldr']));
  withDefaults(loopOptions(cmd), 'sft');
  cmd.action(action('sft', cmd, (s, hooks) => trainer.sft(s as trainer.SftSettings, hooks)));
}

function augmentCommand(program: Command): void {
  const cmd = program
    .command('augment')
    .description('preference augmentation: fine-tune the model on judge instructions built from human preference pairs (each pair in both orders, the answer token naming the preferred side)')
    .option('--model <dir>', 'the SFT model to turn into a better judge (Hugging Face folder)')
    .option('--pairs <file>', 'human preference pairs (.jsonl or .parquet)')
    .addOption(new Option('--format <kind>', 'record format of --pairs').choices(['pairs', 'hh', 'tldr']))
    .option('--template <name>', 'judge template: hh, tldr or a file')
    .option('--judge-max-length <n>', "longest judge instruction in tokens (default: the model's context)");
  withDefaults(loopOptions(cmd), 'augment');
  cmd.action(action('augment', cmd, (s, hooks) => trainer.augment(s as trainer.AugmentSettings, hooks)));
}

export function trainCommands(program: Command): void {
  onlineCommand(program, 'train');
  onlineCommand(program, 'self-reward');
  dpoCommand(program);
  sftCommand(program);
  augmentCommand(program);
}
