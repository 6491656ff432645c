// `node --import ./test/helpers/without-wasm.mjs ...` runs as if @tensorflow/tfjs-backend-wasm were
// not installed (`npm install gvpo @tensorflow/tfjs` and nothing else): importing it fails the way
// Node fails on a missing package.
import { register } from 'node:module';

register(
  `data:text/javascript,${encodeURIComponent(`
export async function resolve(specifier, context, next) {
  if (specifier === '@tensorflow/tfjs-backend-wasm' || specifier.startsWith('@tensorflow/tfjs-backend-wasm/')) {
    const e = new Error("Cannot find package '@tensorflow/tfjs-backend-wasm' imported from " + context.parentURL);
    e.code = 'ERR_MODULE_NOT_FOUND';
    throw e;
  }
  return next(specifier, context);
}`)}`,
);
