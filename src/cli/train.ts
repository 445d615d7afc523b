// The training commands: train (online self-preferring), self-reward, dpo (offline dpo / ipo / spce),
// sft, augment (preference augmentation of the judge), reward-model (Bradley-Terry) and ppo (RLHF). Each is a table row: its flags and their
// help; the trainer's settings (src/osp/settings.ts) give every flag's type, choices and default.
// A command turns its flags (and --config FILE) into those settings and calls the library trainer
// (src/osp/trainer.ts) with progress bars and Ctrl-C; nothing else happens here. --resume RUN_DIR
// continues a run with its saved settings.
import { Command, Option } from 'commander';
import * as trainer from '../osp/trainer';
import { TrainerCommand, settingHelp } from '../osp/settings';
import { Progress, UsageError, setExitCode, installStopHandler, mergeConfig, progressLog } from './common';

/** A flag with its argument and its help; choices and default come from the command's settings. */
type Flag = [flags: string, help: string];

const LOOP_FLAGS: Flag[] = [
  ['--out <dir>', 'run folder to create (config, metrics, samples, checkpoints, report)'],
  ['--resume <dir>', 'continue the run in this folder from its last complete checkpoint (with --steps N: extend it to N steps)'],
  ['--batch-size <n>', 'examples (prompts or pairs) per optimizer step'],
  ['--micro-batch <n>', 'examples per forward/backward (gradients are accumulated)'],
  ['--lr <x>', 'peak learning rate'],
  ['--warmup-steps <n>', 'linear warm-up steps (default: --warmup-ratio of the steps)'],
  ['--warmup-ratio <x>', 'warm-up as a fraction of the run\'s steps, when --warmup-steps is not given'],
  ['--schedule <kind>', 'learning-rate schedule after warm-up'],
  ['--min-lr-ratio <x>', 'final learning rate of linear/cosine decay as a fraction of --lr'],
  ['--weight-decay <x>', 'AdamW decoupled weight decay (not on norm weights)'],
  ['--max-grad-norm <x>', 'global gradient-norm clipping'],
  ['--steps <n>', 'optimizer steps (default: --epochs over the data)'],
  ['--epochs <x>', 'passes over the data when --steps is not given'],
  ['--seed <n>', 'seed of the data order, sampling and pairing'],
  ['--save-every <n>', 'checkpoint every n steps (and at the end, and on Ctrl-C)'],
  ['--keep <n>', 'checkpoints to keep'],
  ['--device <device>', 'cpu or cuda (default: cuda when a GPU answers, else cpu)'],
  ['--dtype <dtype>', 'weights in memory: f32 or bf16 (default: bf16 on cuda, f32 on cpu)'],
  ['--recompute', 'recompute activations per layer in the backward (less memory, one more forward)'],
  ['--limit <n>', 'use only the first n records of the data'],
  ['--sample <n>', 'use a random subset of n records (after --limit), chosen by --seed'],
  ['--skip-bad', 'skip malformed records (counted) instead of stopping at the first'],
  ['--lora <spec>', 'train LoRA adapters on the frozen base: r=N,alpha=X[,dropout=P][,targets=q,k,v,o,gate,up,down] (targets default all seven; policy, reference and judge share one copy of the base; final/ is a PEFT adapter folder)'],
  ['--adapter <dir>', 'start the policy from this PEFT LoRA adapter folder on --model (continues training it; implies --lora with its settings)'],
  ['--dry-run', 'print the memory plan (weights, optimizer state, gradients, activations, kv cache, LM head chunk) against the card and exit; loads no weights'],
  ['--device-memory <size>', "the card's memory to plan for, e.g. 48GB, 44.7GiB, 512MB or bytes (default: the present card's on cuda; none on the cpu)"],
  ['--config <file>', 'JSON file giving any of these settings (flags on the command line win)'],
];

const ONLINE_FLAGS: Flag[] = [
  ['--model <dir>', 'the SFT model (Hugging Face folder): the policy starts here; also the frozen reference and judge'],
  ['--judge <dir>', 'a separate judge: a model folder, or a PEFT adapter folder applied to --model (e.g. final/ of osp augment --lora) (default: --model)'],
  ['--reference <dir>', 'the frozen reference: a model folder or an adapter folder on --model (default: --model, the SFT model); may be the --judge folder, which then serves as both'],
  ['--prompts <file>', 'prompts (.jsonl or .parquet)'],
  ['--format <kind>', 'record format of --prompts (the prompt field is used)'],
  ['--k <n>', 'responses sampled per prompt'],
  ['--beta <x>', 'scale of the log-ratio margin'],
  ['--temperature <x>', 'sampling temperature'],
  ['--top-p <x>', 'nucleus sampling mass'],
  ['--max-new-tokens <n>', 'longest sampled response'],
  ['--judge-max-length <n>', "longest judge instruction in tokens (default: the paper's 768 for hh, 1124 for tldr, within the judge's context; a custom template: the context)"],
  ['--judge-batch <n>', 'judge instructions per forward (the judge keeps every layer of a forward: fewer use less memory)'],
  ['--template <name>', 'judge template: hh, tldr, or a file with {prompt}, {a}, {b}'],
  ['--scorer <task>', "score samples and judge pairs with a task's programmatic scorer (metrics only; the embedded demo task: demo)"],
];

const COMMANDS: { name: TrainerCommand; description: string; flags: Flag[]; start: (s: Record<string, unknown>, hooks: trainer.TrainerHooks) => Promise<trainer.RunResult> }[] = [
  {
    name: 'train',
    description: 'online self-preferring (OSP): sample K responses per prompt, rank them with the frozen judge against the blank response, pair highest with lowest, train on the judged soft preferences',
    flags: [
      ...ONLINE_FLAGS,
      ['--loss <kind>', 'preference loss'],
      ['--pairing <kind>', 'ranked (the paper), or the ablations: random; raft (SFT on the best of K by the judge); spin (the data\'s response against the policy\'s own samples; needs --format sft, pairs, hh or tldr)'],
      ['--sampling <from>', 'sample from the policy (on-policy), or the ablations: sft (the frozen SFT model); rso (statistical rejection sampling of SFT samples by the judge\'s blank-baseline log-odds, or --rso-reward-model\'s rewards)'],
      ['--rso-candidates <n>', 'with --sampling rso: candidates drawn per prompt, of which K are accepted (default 4 K)'],
      ['--rso-beta <x>', 'with --sampling rso: beta of the optimal policy pi_sft exp(r / beta)'],
      ['--rso-reward-model <dir>', 'with --sampling rso: accept by this reward model\'s scores (osp reward-model final/) instead of the judge\'s blank-baseline log-odds'],
    ],
    start: (s, hooks) => trainer.train(s as trainer.TrainSettings, hooks),
  },
  {
    name: 'self-reward',
    description: 'the self-rewarding baseline: sample K responses per prompt, judge them against the blank response with the frozen model, train on best vs worst with the DPO loss',
    flags: ONLINE_FLAGS,
    start: (s, hooks) => trainer.selfReward(s as trainer.SelfRewardSettings, hooks),
  },
  {
    name: 'dpo',
    description: 'offline preference optimisation on fixed pairs: DPO, IPO, or SPCE with soft labels from the data (strength) or from the judge',
    flags: [
      ['--model <dir>', 'the SFT model (Hugging Face folder): the policy starts here and is the frozen reference'],
      ['--pairs <file>', 'preference pairs (.jsonl or .parquet)'],
      ['--format <kind>', 'record format of --pairs'],
      ['--loss <kind>', 'preference loss'],
      ['--labels <from>', "spce's soft labels: the data's strength field (missing = 1) or the judge"],
      ['--judge <dir>', 'judge model folder for --labels judge (default: --model)'],
      ['--template <name>', 'judge template for --labels judge: hh, tldr or a file'],
      ['--judge-max-length <n>', "longest judge instruction in tokens (default: the paper's 768 for hh, 1124 for tldr, within the judge's context)"],
      ['--judge-batch <n>', 'judge instructions per forward for --labels judge'],
      ['--beta <x>', 'scale of the log-ratio margin'],
    ],
    start: (s, hooks) => trainer.dpo(s as trainer.DpoSettings, hooks),
  },
  {
    name: 'sft',
    description: 'supervised fine-tuning on prompt/response pairs (prompt tokens masked in the loss)',
    flags: [
      ['--model <dir>', 'the model to fine-tune (Hugging Face folder)'],
      ['--data <file>', 'examples (.jsonl or .parquet): {prompt, response}, or pairs/hh/tldr whose chosen side is used'],
      ['--format <kind>', 'record format of --data'],
    ],
    start: (s, hooks) => trainer.sft(s as trainer.SftSettings, hooks),
  },
  {
    name: 'augment',
    description: 'preference augmentation: fine-tune the model on judge instructions built from human preference pairs (each pair in both orders, the answer token naming the preferred side)',
    flags: [
      ['--model <dir>', 'the SFT model to turn into a better judge (Hugging Face folder)'],
      ['--pairs <file>', 'human preference pairs (.jsonl or .parquet)'],
      ['--format <kind>', 'record format of --pairs'],
      ['--template <name>', 'judge template: hh, tldr or a file'],
      ['--judge-max-length <n>', "longest judge instruction in tokens (default: the paper's 768 for hh, 1124 for tldr, within the model's context)"],
      ['--orders <how>', "both: every pair in both orders (A and B); split: the paper's 2% setting, the first half of the pairs with the preferred answer as A, the second half as B"],
    ],
    start: (s, hooks) => trainer.augment(s as trainer.AugmentSettings, hooks),
  },
  {
    name: 'reward-model',
    description: "a Bradley-Terry reward model on preference pairs: --model's backbone plus a scalar head read at each sequence's last token; held-out accuracy in metrics; final/ loads as LlamaForSequenceClassification (with --lora: a PEFT SEQ_CLS adapter)",
    flags: [
      ['--model <dir>', 'the model whose backbone the reward model starts from (Hugging Face folder; its LM head is dropped)'],
      ['--pairs <file>', 'preference pairs (.jsonl or .parquet); strength < 0.5 swaps a pair, 0.5 leaves it out'],
      ['--format <kind>', 'record format of --pairs'],
      ['--eval-fraction <x>', 'fraction of the pairs held out (a seeded draw, at least 1 pair) for accuracy and loss in metrics'],
      ['--eval-every <n>', 'score the held-out pairs every n steps (and after the last)'],
    ],
    start: (s, hooks) => trainer.rewardModel(s as trainer.RewardModelSettings, hooks),
  },
  {
    name: 'ppo',
    description: "RLHF with PPO (the paper's baseline): K samples per prompt from the policy, scored by a frozen reward model at the last token, a per-token KL penalty against the frozen SFT model, a value head on the policy's trunk, GAE, clipped policy and value losses over several epochs of mini-batches",
    flags: [
      ['--model <dir>', 'the SFT model (Hugging Face folder): the policy starts here; also the frozen reference'],
      ['--reward-model <dir>', 'the frozen reward model (final/ of osp reward-model: a LlamaForSequenceClassification folder or a PEFT SEQ_CLS adapter); same tokenizer as --model'],
      ['--prompts <file>', 'prompts (.jsonl or .parquet)'],
      ['--format <kind>', 'record format of --prompts (the prompt field is used)'],
      ['--k <n>', 'responses sampled per prompt (a step trains on batch-size x K samples)'],
      ['--temperature <x>', 'sampling temperature (log-probs are those of the tempered distribution)'],
      ['--top-p <x>', 'nucleus sampling mass'],
      ['--max-new-tokens <n>', 'longest sampled response'],
      ['--kl-coef <x>', 'per-token KL penalty: reward_t = -kl_coef (log pi - log pi_ref), plus the score at the last token (the initial value with --adaptive-kl)'],
      ['--adaptive-kl', "adapt kl_coef toward --kl-target (Ziegler et al.'s proportional controller)"],
      ['--kl-target <x>', 'target KL per sequence of --adaptive-kl'],
      ['--kl-horizon <n>', 'horizon (samples) of --adaptive-kl'],
      ['--gamma <x>', 'discount of GAE'],
      ['--lam <x>', 'lambda of GAE'],
      ['--ppo-epochs <n>', 'passes over each rollout batch'],
      ['--mini-batch <n>', 'samples per optimizer update within an epoch (default: the whole rollout, batch-size x K)'],
      ['--clip-range <x>', 'PPO ratio clip epsilon'],
      ['--clip-range-value <x>', 'value clip around the rollout values'],
      ['--vf-coef <x>', 'weight of the value loss'],
      ['--whiten-rewards', 'whiten the per-token rewards over the rollout (scale only, the mean kept) before GAE'],
      ['--scorer <task>', "score samples with a task's programmatic scorer (metrics only; the embedded demo task: demo)"],
    ],
    start: (s, hooks) => trainer.ppo(s as trainer.PpoSettings, hooks),
  },
];

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
    notice: progressLog,
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
        // --steps extends the run; every other flag is the saved run's.
        const given = (name: string) => cmd.getOptionValueSource(name) === 'cli';
        const ignored = cmd.options.filter((o) => !['resume', 'steps'].includes(o.attributeName()) && given(o.attributeName())).map((o) => o.long);
        if (ignored.length) process.stderr.write(`--resume continues ${runDir} with its saved settings (config.json); ignoring ${ignored.join(', ')}\n`);
        return trainer.resume(runDir, hooks, given('steps') ? { steps: Number(raw.steps) } : {});
      });
      return;
    }
    const settings = settingsOf(cmd, raw);
    if (settings.dryRun) {
      // The plan only: no run folder, no progress bars; the table goes to stdout.
      const r = await startNew(settings, {});
      process.stdout.write(`${r.dryRun?.table ?? ''}\n`);
      return;
    }
    if (settings.out === undefined) throw new UsageError('--out: expected a folder for the run (or --resume RUN_DIR to continue one)');
    await runWithProgress(command, (hooks) => startNew(settings, hooks));
  };
}

export function trainCommands(program: Command): void {
  for (const c of COMMANDS) {
    const cmd = program.command(c.name).description(c.description);
    for (const [flags, help] of [...c.flags, ...LOOP_FLAGS]) {
      const o = new Option(flags, help);
      const h = settingHelp(c.name, o.attributeName());
      if (h.choices) o.choices(h.choices);
      if (h.default !== undefined) o.default(String(h.default));
      cmd.addOption(o);
    }
    cmd.action(action(c.name, cmd, c.start));
  }
}
