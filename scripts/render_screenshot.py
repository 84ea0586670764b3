"""Render docs/images/rootletseg_screenshot.png: the phantom's level segments as 3D surfaces over a slice of its image.

What the Slicer panel shows after Apply with "Show 3D" on, made here from a real MRML scene (slicer-core) without
desktop Slicer: the synthetic phantom as a volume node, its rootlet label map loaded as level segments by the panel's
own code (`slicer/segments.show_level_segments`, level colours and names), their closed-surface representation (the
segmentation converter Slicer uses), and a mid-sagittal slice of the image, drawn by VTK off screen (EGL or OSMesa;
no display needed). Run from the repository root:

    .venv/bin/python scripts/render_screenshot.py [--out docs/images/rootletseg_screenshot.png] [--size 800 600]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_OUT = REPO / "docs" / "images" / "rootletseg_screenshot.png"


def build_scene(seed: int = 0):
    """(core scene, volume node, segmentation node with the level segments and their closed surfaces)."""
    import SimpleITK as sitk

    from RootletSegLogic.slicer.segments import show_level_segments
    from RootletSegLogic.slicer.volumes import create_core_scene, image_from_volume_node, volume_node_from_image
    from RootletSegLogic.synthetic.phantom import make_phantom

    core = create_core_scene()
    phantom = make_phantom(seed=seed)
    volume = volume_node_from_image(core.scene, phantom.image, "RootletSeg phantom")
    rootlets = sitk.Image(phantom.rootlets)
    rootlets.CopyInformation(image_from_volume_node(volume))
    segmentation = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "RootletSeg phantom rootlets")
    show_level_segments(segmentation, rootlets, volume, closed_surfaces=True)
    return core, volume, segmentation


def _surface_actors(segmentation):
    import vtk

    actors, legend = [], []
    seg = segmentation.GetSegmentation()
    for i in range(seg.GetNumberOfSegments()):
        segment_id = seg.GetNthSegmentID(i)
        segment = seg.GetSegment(segment_id)
        surface = vtk.vtkPolyData()
        if not segmentation.GetClosedSurfaceRepresentation(segment_id, surface) or surface.GetNumberOfPoints() == 0:
            continue
        normals = vtk.vtkPolyDataNormals()
        normals.SetInputData(surface)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(normals.GetOutputPort())
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*segment.GetColor())
        actor.GetProperty().SetSpecular(0.3)
        actors.append(actor)
        legend.append((segment.GetName(), segment.GetColor()))
    return actors, legend


def _slice_actor(volume, axis: int = 0):
    """A grey image slice through the middle of the volume along IJK `axis`, placed in RAS by the IJK-to-RAS matrix."""
    import vtk

    image = volume.GetImageData()
    low, high = image.GetScalarRange()
    colors = vtk.vtkImageMapToWindowLevelColors()
    colors.SetInputData(image)
    colors.SetWindow(high - low)
    colors.SetLevel((high + low) / 2)
    colors.SetOutputFormatToRGB()
    colors.Update()
    extent = list(image.GetExtent())
    middle = (extent[2 * axis] + extent[2 * axis + 1]) // 2
    extent[2 * axis] = extent[2 * axis + 1] = middle
    actor = vtk.vtkImageActor()
    actor.GetMapper().SetInputConnection(colors.GetOutputPort())
    actor.SetDisplayExtent(extent)
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ijk_to_ras)
    actor.SetUserMatrix(ijk_to_ras)
    return actor


def render(out: Path = DEFAULT_OUT, size=(800, 600), seed: int = 0) -> Path:
    import vtk

    core, volume, segmentation = build_scene(seed)
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(0.06, 0.07, 0.10)
    renderer.SetBackground2(0.30, 0.33, 0.40)
    renderer.GradientBackgroundOn()
    actors, legend = _surface_actors(segmentation)
    if not actors:
        raise RuntimeError("no level surface was made from the phantom")
    for actor in actors:
        renderer.AddActor(actor)
    renderer.AddActor(_slice_actor(volume, axis=1))
    for row, (name, color) in enumerate(legend):
        text = vtk.vtkTextActor()
        text.SetInput(name)
        text.GetTextProperty().SetFontSize(17)
        text.GetTextProperty().SetColor(*color)
        text.GetTextProperty().BoldOn()
        text.SetDisplayPosition(18, size[1] - 34 - 24 * row)
        renderer.AddViewProp(text)
    title = vtk.vtkTextActor()
    title.SetInput("RootletSeg: level segments (3D) on the synthetic phantom")
    title.GetTextProperty().SetFontSize(15)
    title.GetTextProperty().SetColor(0.9, 0.9, 0.9)
    title.SetDisplayPosition(18, 14)
    renderer.AddViewProp(title)

    # look at the dorsal rootlets from behind, a little from the left and above (RAS: -R, -A, +S), S up; the slice
    # is the mid-coronal one, in front of the ventral rootlets
    camera = renderer.GetActiveCamera()
    bounds = [0.0] * 6
    segmentation.GetBounds(bounds)
    center = [(bounds[2 * i] + bounds[2 * i + 1]) / 2 for i in range(3)]
    camera.SetFocalPoint(*center)
    camera.SetPosition(center[0] - 90, center[1] - 200, center[2] + 60)
    camera.SetViewUp(0, 0, 1)
    renderer.ResetCamera(bounds)
    camera.Zoom(0.95)

    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetMultiSamples(8)
    window.SetSize(*size)
    window.AddRenderer(renderer)
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.ReadFrontBufferOff()
    grab.Update()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(out))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    window.Finalize()
    del core
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--size", type=int, nargs=2, default=(800, 600), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(render(args.out, tuple(args.size), args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
