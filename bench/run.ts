import { benchPipeline } from './pipeline.js';

/* npm run bench: every benchmark in turn; each prints its figures and writes its section of docs/BENCHMARKS.md. */
await benchPipeline();
