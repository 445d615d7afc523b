// Jest runs each test file in its own V8 context, so errors and typed arrays made by the native
// addon (which belong to Node's main context) fail `instanceof RangeError` / `Float32Array` checks
// against the test context's classes. Sharing the main context's constructors makes the tests see
// what a plain Node.js program sees.
const { TestEnvironment } = require('jest-environment-node');

const shared = [
  'Error', 'TypeError', 'RangeError',
  'ArrayBuffer', 'Float32Array', 'Float64Array', 'Int32Array', 'Uint16Array', 'Uint8Array',
];

class OspEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of shared) this.global[name] = globalThis[name];
  }
}

module.exports = OspEnvironment;
