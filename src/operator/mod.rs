//! Operator mode (`tomato operator`).

pub mod results;
