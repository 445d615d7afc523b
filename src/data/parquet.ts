// Parquet reading through hyparquet, which is published as an ES module only ("type": "module"),
// while this package compiles to CommonJS.
//
// Loading: first `require('hyparquet')`, which works where Node can require an ES module (Node >=
// 20.19 and 22.12 by default) and under Jest, whose config transforms hyparquet's files to CommonJS
// (jest.config.js: transformIgnorePatterns and the hyparquet transform). Where require() of an ES
// module is refused (ERR_REQUIRE_ESM on Node 20.17 / 20.18, or `--no-experimental-require-module`),
// it falls back to a real dynamic import() of the resolved file. The import() lives in a Function
// body so that TypeScript's CommonJS output does not rewrite it into a require() call.
import * as path from 'path';
import { pathToFileURL } from 'url';

/** The few hyparquet entry points the data layer uses (typed here: hyparquet's own types are ESM). */
export interface AsyncBufferLike {
  byteLength: number;
  slice(start: number, end?: number): unknown;
}
export interface ParquetSchemaNode {
  element: { name: string };
  children: ParquetSchemaNode[];
}
export interface ParquetMetadataLike {
  num_rows: bigint | number;
}
export interface Hyparquet {
  asyncBufferFromFile(filename: string): Promise<AsyncBufferLike>;
  parquetMetadataAsync(file: AsyncBufferLike): Promise<ParquetMetadataLike>;
  parquetSchema(metadata: ParquetMetadataLike): ParquetSchemaNode;
  parquetReadObjects(options: {
    file: AsyncBufferLike;
    metadata?: ParquetMetadataLike;
    columns?: string[];
    rowStart?: number;
    rowEnd?: number;
  }): Promise<Record<string, unknown>[]>;
}

// eslint-disable-next-line @typescript-eslint/no-implied-eval
const dynamicImport = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

let loading: Promise<Hyparquet> | undefined;

function checked(mod: unknown, how: string): Hyparquet {
  const m = mod as Partial<Hyparquet> & { default?: Partial<Hyparquet> };
  const api = typeof m?.parquetReadObjects === 'function' ? m : m?.default;
  if (!api || typeof api.parquetReadObjects !== 'function' || typeof api.asyncBufferFromFile !== 'function') {
    throw new Error(`hyparquet loaded through ${how} lacks parquetReadObjects / asyncBufferFromFile (is it the Node build, version >= 1.20?)`);
  }
  return api as Hyparquet;
}

/** hyparquet, loaded once (require first, then import()); errors say both reasons. */
export function loadHyparquet(): Promise<Hyparquet> {
  if (!loading) {
    loading = (async () => {
      let requireError: unknown;
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        return checked(require('hyparquet'), 'require()');
      } catch (e) {
        requireError = e;
      }
      try {
        const resolved = require.resolve('hyparquet');
        return checked(await dynamicImport(pathToFileURL(path.resolve(resolved)).href), 'import()');
      } catch (e) {
        throw new Error(
          `cannot load hyparquet (needed to read .parquet files): require() failed with ${(requireError as Error)?.message ?? requireError}; ` +
            `import() failed with ${(e as Error)?.message ?? e}`,
        );
      }
    })();
    loading.catch(() => {
      loading = undefined;
    });
  }
  return loading;
}

/** Converts what hyparquet returns into JSON-like values: bigint -> number, bytes -> UTF-8 text. */
export function plainValue(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
  if (Array.isArray(v)) return v.map(plainValue);
  if (v !== null && typeof v === 'object' && !(v instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = plainValue(x);
    return out;
  }
  return v;
}

/**
 * Rows of a Parquet file in chunks of `chunkRows`, as plain objects, with their 0-based row index.
 * Only the top-level columns named in `wanted` are decoded (others are never read), when given.
 */
export async function* parquetRows(file: string, wanted?: readonly string[], chunkRows = 1024): AsyncGenerator<{ row: number; value: unknown }> {
  const hp = await loadHyparquet();
  let buffer: AsyncBufferLike;
  let metadata: ParquetMetadataLike;
  try {
    buffer = await hp.asyncBufferFromFile(file);
    metadata = await hp.parquetMetadataAsync(buffer);
  } catch (e) {
    throw new Error(`${file}: not a readable Parquet file: ${(e as Error)?.message ?? e}`);
  }
  const present = hp.parquetSchema(metadata).children.map((c) => c.element.name);
  const columns = wanted ? present.filter((name) => wanted.includes(name)) : undefined;
  if (columns && columns.length === 0) {
    throw new Error(`${file}: has none of the columns ${wanted!.join(', ')}; its columns are ${present.join(', ') || '(none)'}`);
  }
  const total = Number(metadata.num_rows);
  for (let start = 0; start < total; start += chunkRows) {
    const end = Math.min(total, start + chunkRows);
    let rows: Record<string, unknown>[];
    try {
      rows = await hp.parquetReadObjects({ file: buffer, metadata, columns, rowStart: start, rowEnd: end });
    } catch (e) {
      throw new Error(`${file}: rows ${start}..${end - 1}: cannot decode: ${(e as Error)?.message ?? e}`);
    }
    for (let i = 0; i < rows.length; i++) yield { row: start + i, value: plainValue(rows[i]) };
  }
}
