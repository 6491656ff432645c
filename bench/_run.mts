import { benchGvpoFromHidden } from './gvpoFromHidden.bench.js';
await benchGvpoFromHidden((s = '') => console.log(s), 2, process.argv.includes('--quick'));
