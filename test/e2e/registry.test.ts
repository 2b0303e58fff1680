import { registryBattery } from './registry-battery.js';

registryBattery({ name: 'SQLite', processes: 1, freshStore: async () => ':memory:' });
