import { describeSupervisor } from './supervisor-suite.ts';

describeSupervisor({
  title: 'worker supervisor (2 worker threads, SO_REUSEPORT)',
  workerMode: 'threads',
  expectKind: 'threads',
});
