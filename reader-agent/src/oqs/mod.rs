//! The reception computer's file interface (オンライン資格確認端末の連携ファイル): reception
//! software writes `XmlMsg` request files into `DIR/req/`, the agent answers each under the
//! same name with `req` → `res` in `DIR/res/`, and confirmations done at the kiosk appear in
//! `DIR/face/`. The layout, its sources and every assumption: docs/oqs-files.md.
//!
//! [`codec`] (bytes ↔ element tree) and [`message`] (the layout) do no I/O; [`folders`] owns
//! the durable file steps; [`serve`] watches `req/` and talks to the service; [`face`] writes
//! the kiosk's files.

pub mod codec;
pub mod face;
pub mod folders;
pub mod fuzzing;
pub mod message;
#[cfg(test)]
mod samples;
pub mod serve;
