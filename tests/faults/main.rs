//! Real faults on running servers (each a process of its own): `kill -9`, Redis stopped and
//! restarted under several nodes, a node started while Redis is down, the database cut off,
//! a full disk, uploads interrupted.

#[allow(dead_code)] // this binary uses a few of the API tests' helpers
#[path = "../api/helpers/mod.rs"]
mod helpers;

mod crash;
mod full_disk;
mod postgres;
mod redis;
mod uploads;
