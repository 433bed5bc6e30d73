//! Tear-down on drop, so a failing test (a panic) still removes its lab.

use std::ops::Deref;

use crate::error::Result;
use crate::lab::Lab;
use crate::spec::LabSpec;
use crate::up::up;

/// Owns a lab and tears it down when dropped (errors are logged, not raised).
#[derive(Debug)]
pub struct LabGuard {
    lab: Option<Lab>,
}

impl LabGuard {
    /// Bring a lab up under a guard.
    pub fn up(spec: &LabSpec) -> Result<Self> {
        Ok(LabGuard {
            lab: Some(up(spec)?),
        })
    }

    /// Guard an existing lab.
    pub fn new(lab: Lab) -> Self {
        LabGuard { lab: Some(lab) }
    }

    /// Tear down now, reporting errors.
    pub fn down(mut self) -> Result<()> {
        match self.lab.take() {
            Some(lab) => lab.down(),
            None => Ok(()),
        }
    }

    /// Keep the lab running past the guard.
    pub fn release(mut self) -> Option<Lab> {
        self.lab.take()
    }
}

impl Deref for LabGuard {
    type Target = Lab;

    fn deref(&self) -> &Lab {
        // Only `down`/`release` take the lab, and both consume the guard.
        self.lab
            .as_ref()
            .expect("lab present until the guard is consumed")
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Some(lab) = self.lab.take()
            && let Err(e) = lab.down()
        {
            tracing::error!(lab = %lab.name, %e, "tear-down from guard failed");
        }
    }
}
