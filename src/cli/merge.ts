// osp merge: a LoRA adapter folder merged into its base, written as a Hugging Face folder
// (mergeAdapter in src/osp/models.ts does the work).
import { Command, Option } from 'commander';
import { z } from 'zod';
import { mergeAdapter } from '../osp/models';
import { mergeConfig, validate } from './common';

export function mergeCommand(program: Command): void {
  const cmd = program
    .command('merge')
    .description('merge a LoRA adapter (PEFT folder, e.g. final/ of a --lora run) into its base model: writes a Hugging Face folder with W + (alpha / r) B A')
    .option('--model <dir>', 'the base model (Hugging Face folder) the adapter was trained on')
    .option('--adapter <dir>', 'the adapter folder (adapter_config.json + adapter_model.safetensors)')
    .option('--out <dir>', 'the merged model folder to write (atomically)')
    .addOption(new Option('--save-dtype <dtype>', 'dtype of the saved weights').choices(['f32', 'bf16']).default('f32'))
    .option('--config <file>', 'JSON file giving any of these settings (flags on the command line win)');
  cmd.action(async (raw: Record<string, unknown>) => {
    const schema = z.object({
      model: z.string({ required_error: 'expected the base model folder' }).min(1),
      adapter: z.string({ required_error: 'expected the adapter folder' }).min(1),
      out: z.string({ required_error: 'expected a folder to write' }).min(1),
      saveDtype: z.enum(['f32', 'bf16']),
    });
    const s = validate(schema, mergeConfig(cmd, raw));
    await mergeAdapter(s.model, s.adapter, s.out, { dtype: s.saveDtype === 'bf16' ? 'BF16' : 'F32' });
    process.stderr.write(`wrote the merged model to ${s.out}\n`);
  });
}
