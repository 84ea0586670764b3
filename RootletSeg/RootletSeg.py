"""RootletSeg: 3D Slicer module segmenting spinal nerve rootlets (nnU-Net v2) and comparing spinal with vertebral levels.

This file is the GUI only. Every computation is a call into the `RootletSegLogic` package (no Qt), which the
`rootletseg` command line uses too: segmentation runs as `python -m RootletSegLogic segment ... --progress json` in a
child process (RootletSegLogic.child_process), levels are computed in process (RootletSegLogic.levels) from the
segments as the user edits them, and MRML conversions live in RootletSegLogic.slicer.volumes (scene, volumes),
RootletSegLogic.slicer.segments (level segments) and RootletSegLogic.slicer.level_nodes (disc markups, level table, chart).
"""

import importlib
import logging
import os
import sys
import tempfile
from pathlib import Path

import ctk
import qt
import slicer
import vtk
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


def _coreFolder() -> Path:
    """Folder holding the RootletSegLogic package and Resources/: beside this file once installed (Slicer's
    qt-scripted-modules folder), the repository root when the source folder RootletSeg/ is used as a module path."""
    here = Path(__file__).resolve().parent
    for candidate in (here, here.parent):
        if (candidate / "RootletSegLogic" / "__init__.py").is_file():
            return candidate
    return here


if str(_coreFolder()) not in sys.path:
    sys.path.insert(0, str(_coreFolder()))

from RootletSegLogic.errors import UserError  # noqa: E402
from RootletSegLogic.slicer import (  # noqa: E402
    child_process,
    dependencies,
    level_nodes,
    segments,
    session,
    volumes,
)
from RootletSegLogic.slicer.session import Contrast, Device, LevelMethod, ModelChoice  # noqa: E402

LEVEL_UPDATE_DELAY_MS = 500
POLL_INTERVAL_MS = 100


#
# RootletSeg
#


class RootletSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("RootletSeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations", "Markups"]
        self.parent.contributors = ["RootletSeg contributors"]
        self.parent.helpText = _("""
Segments the dorsal and ventral spinal nerve rootlets of the cervical spinal cord (levels C2 to T1) on T2w and
MP2RAGE (T1w-INV1, T1w-INV2, UNIT1) MRI with the RootletSeg nnU-Net v2 model, shows one segment per spinal level,
and compares spinal levels (from the rootlets) with vertebral levels (from intervertebral discs) in a live table.
Segmentation runs in a separate process and can be cancelled. The same results come from the
<code>rootletseg</code> command line.
<br><br>
If you use this module, please cite: J. Krejci, J. Valosek, et al. RootletSeg: deep learning method for spinal
rootlets segmentation across MRI contrasts. arXiv:2509.16255 (2025).
<br><br>
The RootletSeg model weights (ivadomed/model-spinal-rootlets) are distributed under the MIT licence and are
downloaded on first use. Not for clinical use.
""")
        self.parent.acknowledgementText = _("""
The RootletSeg model and method are by the NeuroPoly lab (Polytechnique Montreal) and collaborators
(Krejci, Valosek, Chmelik, Cohen-Adad, Eippert, Callot et al.), built on nnU-Net v2 (Isensee et al.) and
the Spinal Cord Toolbox conventions. This module was built on 3D Slicer's scripted module template.
""")


#
# Parameter node
#


@parameterNodeWrapper
class RootletSegParameterNode:
    """The module's state, saved with the scene.

    inputVolume - image to segment.
    contrast - its contrast (informative; the model is multi-contrast).
    model - registry model, or `local` with modelPath (zip or folder).
    device, tta - where to run the network; test-time augmentation (mirroring).
    outputSegmentation - receives one segment per level ("C2 rootlets" .. "T1 rootlets"); user segments are kept.
    cordSegmentation, cordSegmentId - spinal cord mask (any segment of any segmentation).
    discs - point list of disc markers ("C2/C3", ..., optional "PMJ").
    levelMethod - spinal level method; autoUpdateLevels - recompute the table when segments or discs change.
    levelTable - the level table node.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    contrast: Contrast = Contrast.T2w
    model: ModelChoice = ModelChoice.rootletseg
    modelPath: str = ""  # synchronised by hand with modelPathLineEdit (a Path binding would show "." when empty)
    device: Device = Device.auto
    tta: bool = False
    outputSegmentation: vtkMRMLSegmentationNode
    cordSegmentation: vtkMRMLSegmentationNode
    cordSegmentId: str = ""
    discs: vtkMRMLMarkupsFiducialNode
    levelMethod: LevelMethod = LevelMethod.paper
    autoUpdateLevels: bool = True
    levelTable: vtkMRMLTableNode


#
# Widget
#


class RootletSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._runner = None
        self._levelResult = None
        self._chartNode = None
        self._observedForLevels = []
        self._pendingPointLabel = None

    # ---------------------------------------------------------------- set-up
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(str(_coreFolder() / "Resources" / "UI" / "RootletSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = RootletSegModuleLogic()

        self._levelTimer = qt.QTimer()
        self._levelTimer.setSingleShot(True)
        self._levelTimer.setInterval(LEVEL_UPDATE_DELAY_MS)
        self._levelTimer.connect("timeout()", self.updateLevels)
        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(POLL_INTERVAL_MS)
        self._pollTimer.connect("timeout()", self._pollChild)

        self.ui.modelPathLineEdit.filters = ctk.ctkPathLineEdit.Files | ctk.ctkPathLineEdit.Dirs
        self.ui.modelPathLineEdit.nameFilters = [_("Model zip or folder (*.zip)"), _("All files (*)")]
        self.ui.progressBar.setVisible(False)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.onModelPathChanged)
        self.ui.cordSegmentSelector.connect("currentSegmentChanged(QString)", self.onCordSegmentChanged)
        self.ui.cordSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onCordSegmentChanged)
        self.ui.loadCordButton.connect("clicked(bool)", self.onLoadCordFile)
        self.ui.placeDiscButton.connect("clicked(bool)", self.onPlaceNextDisc)
        self.ui.placePmjButton.connect("clicked(bool)", self.onPlacePmj)
        self.ui.importDiscsButton.connect("clicked(bool)", self.onImportDiscLabels)
        self.ui.updateLevelsButton.connect("clicked(bool)", lambda: self.updateLevels(showErrors=True))
        self.ui.showChartButton.connect("clicked(bool)", self.onShowChart)
        self.ui.exportLabelmapButton.connect("clicked(bool)", lambda: self.onExport("labelmap"))
        self.ui.exportSegmentationButton.connect("clicked(bool)", lambda: self.onExport("segmentation"))
        self.ui.exportTableTsvButton.connect("clicked(bool)", lambda: self.onExport("table_tsv"))
        self.ui.exportTableCsvButton.connect("clicked(bool)", lambda: self.onExport("table_csv"))
        self.ui.exportPlanningJsonButton.connect("clicked(bool)", lambda: self.onExport("planning_json"))
        self.ui.exportMarkupsButton.connect("clicked(bool)", lambda: self.onExport("markups"))

        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            self._runner.close()
            self._runner = None
        self._pollTimer.stop()
        self._levelTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        if self._runner is not None:
            self._runner.cancel()
        self._observeForLevels([])
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume:
                self._parameterNode.inputVolume = firstVolume

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = parameterNode
        if self._parameterNode:
            # widgets with the dynamic property "SlicerParameterName" in the .ui file are bound here
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    # ---------------------------------------------------------------- state -> GUI
    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        running = self._runner is not None
        self.ui.modelPathLineEdit.enabled = p.model == ModelChoice.local and not running
        if running:
            self.ui.applyButton.text = _("Cancel")
            self.ui.applyButton.toolTip = _("Stop the segmentation (ends the process and everything it started)")
            self.ui.applyButton.enabled = True
        else:
            problem = session.apply_problem(bool(p.inputVolume), p.model, p.modelPath)
            self.ui.applyButton.text = _("Apply")
            self.ui.applyButton.toolTip = problem or _("Segment the rootlets of the input volume")
            self.ui.applyButton.enabled = problem is None
        for widget in (self.ui.inputVolumeSelector, self.ui.modelComboBox, self.ui.deviceComboBox,
                       self.ui.ttaCheckBox, self.ui.outputSegmentationSelector):
            widget.enabled = not running
        if self.ui.modelPathLineEdit.currentPath != p.modelPath:
            self.ui.modelPathLineEdit.currentPath = p.modelPath
        if p.cordSegmentation is not self.ui.cordSegmentSelector.currentNode():
            self.ui.cordSegmentSelector.setCurrentNode(p.cordSegmentation)
        if p.cordSegmentId and p.cordSegmentId != self.ui.cordSegmentSelector.currentSegmentID():
            self.ui.cordSegmentSelector.setCurrentSegmentID(p.cordSegmentId)
        if p.levelTable is not None:
            self.ui.levelTableView.setMRMLTableNode(p.levelTable)
        self._observeForLevels([p.outputSegmentation, p.cordSegmentation, p.discs])
        hasLevels = self._levelResult is not None
        for button in (self.ui.exportTableTsvButton, self.ui.exportTableCsvButton, self.ui.exportPlanningJsonButton,
                       self.ui.exportMarkupsButton, self.ui.showChartButton):
            button.enabled = hasLevels
        hasSegments = p.outputSegmentation is not None and p.inputVolume is not None
        self.ui.exportLabelmapButton.enabled = hasSegments
        self.ui.exportSegmentationButton.enabled = p.outputSegmentation is not None

    def onModelPathChanged(self, path) -> None:
        if self._parameterNode is not None and self._parameterNode.modelPath != path:
            self._parameterNode.modelPath = path

    def onCordSegmentChanged(self, *args) -> None:
        if self._parameterNode is None:
            return
        with slicer.util.NodeModify(self._parameterNode):
            self._parameterNode.cordSegmentation = self.ui.cordSegmentSelector.currentNode()
            self._parameterNode.cordSegmentId = self.ui.cordSegmentSelector.currentSegmentID() or ""

    # ---------------------------------------------------------------- live level updates
    def _observeForLevels(self, nodes) -> None:
        """Observe segment edits and marker moves of the level inputs; each change restarts a 500 ms timer."""
        nodes = [node for node in nodes if node is not None]
        if [n.GetID() for n in nodes] == [n.GetID() for n in self._observedForLevels]:
            return
        for observed, event, callback in getattr(self, "_levelObservations", []):
            self.removeObserver(observed, event, callback)
        self._levelObservations = []
        for node in nodes:
            if node.IsA("vtkMRMLSegmentationNode"):
                observed = node.GetSegmentation()
                events = [(slicer.vtkSegmentation.SourceRepresentationModified, self._scheduleLevelUpdate),
                          (slicer.vtkSegmentation.SegmentAdded, self._scheduleLevelUpdate),
                          (slicer.vtkSegmentation.SegmentRemoved, self._scheduleLevelUpdate),
                          (slicer.vtkSegmentation.SegmentModified, self._scheduleLevelUpdate)]
            else:
                observed = node
                events = [(slicer.vtkMRMLMarkupsNode.PointModifiedEvent, self._scheduleLevelUpdate),
                          (slicer.vtkMRMLMarkupsNode.PointRemovedEvent, self._scheduleLevelUpdate),
                          (slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent, self._onPointPositionDefined)]
            for event, callback in events:
                self.addObserver(observed, event, callback)
                self._levelObservations.append((observed, event, callback))
        self._observedForLevels = nodes

    def _onPointPositionDefined(self, caller=None, event=None) -> None:
        """A point was placed: name it as "Place next disc" / "Place PMJ" asked, then update the levels."""
        if self._pendingPointLabel and caller is not None and caller.GetNumberOfControlPoints() > 0:
            caller.SetNthControlPointLabel(caller.GetNumberOfControlPoints() - 1, self._pendingPointLabel)
            self._pendingPointLabel = None
        self._scheduleLevelUpdate()

    def _scheduleLevelUpdate(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is not None and p.autoUpdateLevels and self._runner is None:
            self._levelTimer.start()  # single shot: a burst of edits gives one update, 500 ms after the last

    def updateLevels(self, showErrors=False) -> None:
        """Recompute the level table and chart from the current segments, cord and discs (in process, fast)."""
        self._levelTimer.stop()
        p = self._parameterNode
        if p is None or p.outputSegmentation is None or p.inputVolume is None or self._runner is not None:
            return
        if not self.logic.hasLevelSegments(p.outputSegmentation):
            self.ui.levelsStatusLabel.text = _("No level segments yet: run the segmentation first.")
            return
        try:
            result = session.compute_scene_levels(
                p.outputSegmentation, p.inputVolume, p.cordSegmentation, p.cordSegmentId, p.discs,
                p.levelMethod.value)
        except UserError as error:
            self.ui.levelsStatusLabel.text = str(error)
            if showErrors:
                slicer.util.errorDisplay(str(error))
            return
        with slicer.util.NodeModify(p):
            if p.levelTable is None:
                p.levelTable = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", "RootletSeg levels")
            nodes = session.show_level_result(slicer.mrmlScene, result, p.levelTable)
        self._levelResult = result
        self._chartNode = nodes["chart"]
        self.ui.levelTableView.setMRMLTableNode(p.levelTable)
        summary = _("{spinal} spinal and {vertebral} vertebral levels ({reference}).").format(
            spinal=len(result.spinal()), vertebral=len(result.vertebral()), reference=result.distance_reference)
        self.ui.levelsStatusLabel.text = "\n".join([summary, *result.warnings])
        self._onParameterNodeModified()

    def onShowChart(self) -> None:
        if self._chartNode is not None:
            slicer.modules.plots.logic().ShowChartInLayout(self._chartNode)

    # ---------------------------------------------------------------- apply / cancel
    def onApplyButton(self) -> None:
        if self._runner is not None:
            with slicer.util.tryWithErrorDisplay(_("Failed to cancel."), waitCursor=True):
                self.ui.statusLabel.text = _("Cancelling...")
                slicer.app.processEvents()
                self._runner.cancel()
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to start the segmentation."), waitCursor=True):
            if not self.logic.ensureDependencies():
                self.ui.statusLabel.text = _("Missing Python packages were not installed.")
                return
            p = self._parameterNode
            model = session.model_argument(p.model, p.modelPath)
            if p.outputSegmentation is None:
                p.outputSegmentation = slicer.mrmlScene.AddNewNodeByClass(
                    "vtkMRMLSegmentationNode", p.inputVolume.GetName() + " rootlets")
            self._runner = self.logic.startSegmentation(p.inputVolume, model, session.cli_device(p.device), p.tta)
            self.ui.progressBar.value = 0
            self.ui.progressBar.setVisible(True)
            self.ui.statusLabel.text = _("Starting...")
            self._pollTimer.start()
            self._onParameterNodeModified()

    def _pollChild(self) -> None:
        runner = self._runner
        if runner is None:
            self._pollTimer.stop()
            return
        for event in runner.poll():
            percent, text = child_process.describe_event(event)
            if percent is not None:
                self.ui.progressBar.value = percent
            if text:
                self.ui.statusLabel.text = text
            if event.get("type") == "warning":
                logging.warning("RootletSeg: %s", event.get("message"))
            elif event.get("type") == "log":
                logging.info("rootletseg: %s", event.get("message"))
            elif event.get("type") == "finished":
                self._onFinished(runner, event)

    def _onFinished(self, runner, event) -> None:
        self._pollTimer.stop()
        self._runner = None
        self.ui.progressBar.setVisible(False)
        try:
            if event.get("cancelled"):
                self.ui.statusLabel.text = _("Cancelled; nothing was changed.")
            elif event.get("returncode") != 0:
                self.ui.statusLabel.text = _("Failed: {message}").format(message=runner.error)
                slicer.util.errorDisplay(_("Segmentation failed: {message}").format(message=runner.error),
                                         detailedText=runner.stderr_text)
            else:
                with slicer.util.tryWithErrorDisplay(_("Failed to load the segmentation."), waitCursor=True):
                    p = self._parameterNode
                    ids = session.load_segmentation_result(
                        p.outputSegmentation, session.segmentation_output(runner), p.inputVolume)
                    p.outputSegmentation.CreateClosedSurfaceRepresentation()
                    slicer.util.setSliceViewerLayers(background=p.inputVolume)
                    self.ui.statusLabel.text = _("Done: {count} level segments.").format(count=len(ids))
                    self.updateLevels()
        finally:
            runner.close()
            self._onParameterNodeModified()

    # ---------------------------------------------------------------- cord and discs
    def onLoadCordFile(self) -> None:
        path = qt.QFileDialog.getOpenFileName(
            slicer.util.mainWindow(), _("Load spinal cord mask"), "",
            _("Cord mask (*.nii.gz *.nii *.nrrd *.seg.nrrd *.mha);;All files (*)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to load the cord mask."), waitCursor=True):
            segmentationNode, segmentId = self.logic.loadCordMask(path)
            self.ui.cordSegmentSelector.setCurrentNode(segmentationNode)
            self.ui.cordSegmentSelector.setCurrentSegmentID(segmentId)
            self.onCordSegmentChanged()

    def _discsNode(self):
        p = self._parameterNode
        if p.discs is None:
            p.discs = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", level_nodes.DISC_MARKUPS_NAME)
            p.discs.CreateDefaultDisplayNodes()
        return p.discs

    def onPlaceNextDisc(self) -> None:
        name = level_nodes.next_disc_name(self._parameterNode.discs)
        if not name:
            slicer.util.infoDisplay(_("All discs C2/C3 to T1/T2 are placed. Move a point to correct it."))
            return
        self._placePoint(name)

    def onPlacePmj(self) -> None:
        self._placePoint("PMJ")

    def _placePoint(self, label: str) -> None:
        """One click in a view places a point named `label` in the discs list."""
        node = self._discsNode()
        self._pendingPointLabel = label
        slicer.modules.markups.logic().SetActiveList(node)
        slicer.modules.markups.logic().StartPlaceMode(False)
        self.ui.statusLabel.text = _("Click the {name} position in a view.").format(name=label)

    def onImportDiscLabels(self) -> None:
        path = qt.QFileDialog.getOpenFileName(
            slicer.util.mainWindow(), _("Import SCT disc labels"), "",
            _("Disc label image (*.nii.gz *.nii *.nrrd *.mha);;All files (*)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to import the disc labels."), waitCursor=True):
            p = self._parameterNode
            p.discs = session.import_disc_label_file(path, p.discs if p.discs is not None else slicer.mrmlScene)

    # ---------------------------------------------------------------- exports
    def onExport(self, kind: str) -> None:
        p = self._parameterNode
        volumeName = p.inputVolume.GetName() if p.inputVolume is not None else "rootlets"
        default = os.path.join(self.logic.lastExportFolder(), session.export_filename(volumeName, kind))
        path = qt.QFileDialog.getSaveFileName(
            slicer.util.mainWindow(), _("Export"), default, session.EXPORT_FILTERS[kind])
        if not path:
            return
        path = session.ensure_suffix(path, kind)
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            # the save dialog has asked before replacing an existing file
            if kind == "labelmap":
                written = session.export_label_map(p.outputSegmentation, p.inputVolume, path, overwrite=True)
            elif kind == "segmentation":
                if not slicer.util.saveNode(p.outputSegmentation, str(path)):
                    raise UserError(f"Could not write '{path}': check that the folder is writable.")
                written = path
            else:
                localPath = session.local_model_path(p.modelPath)
                provenance = {"contrast": p.contrast.value, "model": p.model.value or str(localPath or "")}
                written = session.export_level_outputs(self._levelResult, kind, path, overwrite=True,
                                                           provenance=provenance)
                if kind == "markups":
                    level_nodes.level_bound_markups(slicer.mrmlScene, self._levelResult)
            self.logic.setLastExportFolder(str(Path(written).parent))
            self.ui.statusLabel.text = _("Wrote {path}").format(path=written)


#
# Logic
#


class RootletSegModuleLogic(ScriptedLoadableModuleLogic):
    """Thin Slicer-side logic: parameter node, dependency installation, starting the child process.
    (Not named RootletSegLogic: that is the name of the core package.)"""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return RootletSegParameterNode(super().getParameterNode())

    # ---- Python packages
    @staticmethod
    def ensureDependencies(confirm: bool = True) -> bool:
        """True when torch and nnunetv2 are importable, installing them after ONE confirmation when missing."""
        missing = dependencies.missing_packages()
        if not missing:
            return True
        plan = dependencies.install_plan(missing, hasattr(slicer.modules, "pytorchutils"))
        if plan.blocked:
            slicer.util.errorDisplay(plan.message)
            return False
        if confirm and not slicer.util.confirmOkCancelDisplay(plan.message, windowTitle=_("Install Python packages")):
            return False
        for step in plan.steps:
            if step.how == "pytorchutils":
                import PyTorchUtils  # the PyTorch extension

                torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                    askConfirmation=False, torchVersionRequirement=step.requirement)
                if torch is None:
                    raise UserError("PyTorch was not installed: install it in the PyTorch Utils module, then retry.")
            else:
                with tempfile.TemporaryDirectory(prefix="rootletseg_pip_") as folder:
                    slicer.util.pip_install(
                        dependencies.nnunet_pip_arguments(dependencies.torch_constraint_file(folder)))
        importlib.invalidate_caches()
        still = dependencies.missing_packages()
        if still:
            raise UserError(f"Installing {', '.join(still)} did not succeed: see the Python console, then restart Slicer.")
        return True

    # ---- segmentation
    @staticmethod
    def startSegmentation(volumeNode, model: str, device: str = "auto", tta: bool = False):
        """Start `rootletseg segment` on the volume (world space) in Slicer's Python; returns the ChildProcess."""
        return session.start_segmentation(volumeNode, model, device=device, tta=tta,
                                              python=child_process.python_executable())

    @staticmethod
    def hasLevelSegments(segmentationNode) -> bool:
        segmentation = segmentationNode.GetSegmentation()
        return any(segments.segment_level_value(segmentation.GetNthSegment(i)) is not None
                   for i in range(segmentation.GetNumberOfSegments()))

    # ---- cord mask from a file
    @staticmethod
    def loadCordMask(path: str):
        """Load a cord mask file (label map or .seg.nrrd) as a segmentation; returns (node, first segment ID)."""
        if path.lower().endswith(".seg.nrrd"):
            segmentationNode = slicer.util.loadSegmentation(path)
        else:
            labelNode = slicer.util.loadLabelVolume(path)
            segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", labelNode.GetName())
            try:
                ok = slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelNode, segmentationNode)
            finally:
                slicer.mrmlScene.RemoveNode(labelNode)
            if not ok:
                raise UserError(f"'{path}' could not be read as a cord mask: give a 0/1 label map.")
        segmentation = segmentationNode.GetSegmentation()
        if segmentation.GetNumberOfSegments() == 0:
            raise UserError(f"The cord mask '{path}' is empty: give the spinal cord segmentation of this scan.")
        return segmentationNode, segmentation.GetNthSegmentID(0)

    # ---- remembered export folder
    @staticmethod
    def lastExportFolder() -> str:
        return str(qt.QSettings().value("RootletSeg/LastExportFolder", "") or Path.home())

    @staticmethod
    def setLastExportFolder(folder: str) -> None:
        qt.QSettings().setValue("RootletSeg/LastExportFolder", folder)


#
# Test
#


class RootletSegTest(ScriptedLoadableModuleTest):
    """Runs the embedded demo model on a synthetic phantom through the same path as Apply, then checks segments
    and the level table. Needs torch and nnunetv2 (it does not install them)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_DemoModelOnPhantom()

    def test_DemoModelOnPhantom(self):
        missing = dependencies.missing_packages()
        if missing:
            self.delayDisplay(f"Skipped: {', '.join(missing)} not installed (press Apply once to install).")
            return
        from RootletSegLogic.levels import discs as discsModule
        from RootletSegLogic.synthetic.phantom import make_phantom

        self.delayDisplay("Making a phantom")
        phantom = make_phantom(seed=0)
        scene = slicer.mrmlScene
        volume = volumes.volume_node_from_image(scene, phantom.image, "RootletSeg phantom")
        segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Phantom rootlets")

        self.delayDisplay("Running the demo model in a child process")
        runner = RootletSegModuleLogic.startSegmentation(volume, "demo", "cpu", False)
        temporary = runner.temporary_paths
        try:
            runner.wait(timeout=900)
            ids = session.load_segmentation_result(segmentation, session.segmentation_output(runner), volume)
        finally:
            runner.close()
        self.assertTrue(all(not path.exists() for path in temporary), "temporary files left behind")
        names = {segmentation.GetSegmentation().GetSegment(i).GetName() for i in ids.values()}
        self.assertTrue(names, "no level segment")
        self.assertTrue(names <= {f"{name} rootlets" for name in ("C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1")})

        self.delayDisplay("Computing levels")
        cordLabel = volumes.volume_node_from_image(scene, phantom.cord, "Phantom cord", labelmap=True)
        cord = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Phantom cord")
        slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(cordLabel, cord)
        discPoints, pmj = discsModule.landmarks_from_label_image(phantom.discs)
        discsNode = level_nodes.markups_from_disc_points(scene, discPoints, pmj)
        result = session.compute_scene_levels(
            segmentation, volume, cord, cord.GetSegmentation().GetNthSegmentID(0), discsNode, "paper")
        table = session.show_level_result(scene, result)["table"]
        self.assertEqual(len(result.spinal()), len(ids))
        self.assertEqual(table.GetNumberOfRows(), len(result.rows))
        self.assertGreater(len(result.vertebral()), 0)
        self.delayDisplay("Test passed")
