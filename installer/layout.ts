/* The layout of the prefix lives in the contract the runtime shares (runtime/contract/layout.ts). */
export { type Layout, layoutOf, underPrefix } from '../runtime/contract/layout.js';
