/*
 * "Ready" as an operator means it, per service: each service module
 * (installer/services/) carries its own check (the broker accepts our login
 * on the vhost, the store answers, every engine consumes its queue, the
 * webserver's healthcheck says 200), returning a reason when not ready.
 */

export { READY } from '../services/index.js';
export type { ReadyCheck as Check } from '../services/types.js';
