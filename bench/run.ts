import { benchAlarms } from './alarms.js';
import { benchApi } from './api.js';
import { benchBackup } from './backup.js';
import { benchConsole } from './console.js';
import { benchFused } from './fused.js';
import { benchInstall } from './install.js';
import { benchMemory } from './memory.js';
import { benchOperator } from './operator.js';
import { benchPipeline } from './pipeline.js';
import { benchSite } from './site.js';
import { benchUpdate } from './update.js';

/* npm run bench: every benchmark in turn; each prints its figures and writes its section of docs/BENCHMARKS.md. */
const only = process.argv[2];
if (!only || only === 'pipeline') await benchPipeline();
if (!only || only === 'alarms') await benchAlarms();
if (!only || only === 'fused') await benchFused();
if (!only || only === 'api') await benchApi();
if (!only || only === 'memory') await benchMemory();
if (!only || only === 'operator') await benchOperator();
if (!only || only === 'update') await benchUpdate();
if (!only || only === 'install') await benchInstall();
if (!only || only === 'backup') await benchBackup();
if (!only || only === 'console') await benchConsole();
if (!only || only === 'site') await benchSite();
