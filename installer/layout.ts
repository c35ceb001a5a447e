/* The layout of the prefix lives in the contract the runtime shares (runtime/contract/layout.ts). */
export { layoutOf, underPrefix, type Layout } from '../runtime/contract/layout.js';
