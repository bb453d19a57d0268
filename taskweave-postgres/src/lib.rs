//! A durable taskweave cluster on PostgreSQL.

// The store, its schema and the private test server.
pub mod schema;
pub mod store;
pub mod testkit;
pub use schema::{
    LoginKind, MigrateReport, ResetReport, SCHEMA_VERSION, create_agent_login, create_login,
    migrate, reset,
};
pub use store::{PgError, PgStore, connect_admin, session_options};

// Hosts for the roles, and the command line.
pub mod host;
pub use host::{NodeExit, PgAgent, PgClient, PgNode, wall_now};
