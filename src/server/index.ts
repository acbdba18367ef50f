export { createServer, type ListenOptions, type PorchServer, type PorchServerOptions } from './server.js';
