"""End-to-end pipelines composed from gen3d parts, one small file each (installed as gen3d.pipelines)."""
