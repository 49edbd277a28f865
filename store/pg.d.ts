// The part of node-postgres (`pg`, which ships no types) that store/postgres.ts uses.

declare module 'pg' {
  interface QueryResult<Row> {
    rows: Row[];
  }
  interface PoolConfig {
    connectionString?: string;
    options?: string;
    max?: number;
    connectionTimeoutMillis?: number;
  }
  interface PoolClient {
    query<Row>(sql: string, params?: unknown[]): Promise<QueryResult<Row>>;
    release(destroy?: boolean | Error): void;
  }
  class Pool {
    constructor(config?: PoolConfig);
    query<Row>(sql: string, params?: unknown[]): Promise<QueryResult<Row>>;
    connect(): Promise<PoolClient>;
    end(): Promise<void>;
    on(event: 'error', listener: (error: Error) => void): this;
  }
  /** One connection of its own: the DIP service's lease session (session-level advisory locks). */
  export class Client {
    constructor(config?: Omit<PoolConfig, 'max'>);
    connect(): Promise<void>;
    query<Row>(sql: string, params?: unknown[]): Promise<QueryResult<Row>>;
    end(): Promise<void>;
    on(event: 'error', listener: (error: Error) => void): this;
  }
  const pg: { Pool: typeof Pool; Client: typeof Client };
  export default pg;
}
