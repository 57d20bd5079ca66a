//! The packet services (TFTP, DHCP): their sockets are bound before READY, then each
//! runs as a task on the shared `App`.

use crate::app::App;
use crate::config::Config;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Sockets bound at start, handed to the services.
pub struct Services {}

/// Binds every enabled packet service's sockets.
pub async fn bind(_cfg: &Config) -> Result<Services, String> {
    Ok(Services {})
}

impl Services {
    /// Starts the services on the app.
    pub fn spawn(self, _app: &Arc<App>, _tasks: &mut JoinSet<()>) {}
}
