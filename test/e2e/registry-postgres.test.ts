import { registryBattery } from './registry-battery.js';
import { postgresKind } from './registry-postgres-kind.js';

// Two registry servers on one PostgreSQL database, clients spread over both.
registryBattery(postgresKind(2));
