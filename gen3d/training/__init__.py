"""Shared pieces of gen3d's trainers: devices and accelerate, resumable train states, loss logs."""
