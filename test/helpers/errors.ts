// What a call threw, as plain data: the error's class name and message (undefined if it returned).
export function caught(fn: () => unknown): { errorClass: string; message: string } | undefined {
  try {
    fn();
  } catch (e) {
    return { errorClass: (e as Error)?.constructor?.name ?? typeof e, message: String((e as Error)?.message ?? e) };
  }
  return undefined;
}
