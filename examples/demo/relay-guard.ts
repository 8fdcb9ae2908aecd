/**
 * Preloaded into the relay process the demo starts (`node --import ./relay-guard.ts relay/main.ts`):
 * when the start script's IPC channel closes (it exited, even by SIGKILL), the relay stops as on
 * SIGTERM (announcing its departure), so it never outlives the demo.
 */
process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'))
