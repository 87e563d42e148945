//! Debugging questions answered without touching traffic: synthetic frames for `weft trace
//! --inject` (frame_spec) and what a packet from A to B would meet (`weft explain`).

pub mod explain;
pub mod frame_spec;
pub mod runtime_view;
