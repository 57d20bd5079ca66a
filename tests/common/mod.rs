pub mod daemon;
pub mod upstream;
